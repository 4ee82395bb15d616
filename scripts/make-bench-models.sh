#!/usr/bin/env bash
# Writes random-weight checkpoints of real model shapes into bench-models/
# (git-ignored) for benchmarks: bench-models/qwen3-0.6b by default; pass more
# shapes as arguments (e.g. qwen3-8b, 16 GB). Uses the Qwen3 tokenizer from
# .cache (scripts/fetch-test-data.sh) when it is there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-tools"
cmake -S "$root" -B "$build" -G Ninja -DNATIVELM_CUDA=OFF >/dev/null
cmake --build "$build" --target make_random_checkpoint
shapes=("$@")
[ ${#shapes[@]} -eq 0 ] && shapes=(qwen3-0.6b)
for shape in "${shapes[@]}"; do
  "$build/tools/make_random_checkpoint" --shape "$shape" --out "$root/bench-models/$shape" --dtype bf16 --seed 0
done
