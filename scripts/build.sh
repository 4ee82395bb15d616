#!/usr/bin/env bash
# Configures and builds nativelm (Release) into build/; the binary is build/nativelm.
# Usage: scripts/build.sh [preset]   (release by default; ci adds -Werror)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
