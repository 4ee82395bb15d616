#!/usr/bin/env bash
# The test command: dependencies, test data, a -Werror build, every test, and
# a short fuzzing run. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-test-data.sh
scripts/build.sh ci
ctest --preset ci -j "$(nproc)"
if [ -x scripts/run-fuzz.sh ]; then
  scripts/run-fuzz.sh "${NATIVELM_FUZZ_SECONDS:-60}"
fi
echo "all tests passed"
