#!/usr/bin/env bash
# The GPU test set in one go, ending with a summary: the CUDA kernels against
# the CPU backend, the CUDA models against transformers' references and the
# CPU (with and without CUDA graphs, and under continuous batching; also with
# the persistent decode kernel at every batch size), and compute-sanitizer
# memcheck over a short generate, short batched runs and the decode kernel.
#   scripts/test-gpu.sh          builds build/ here first (the project's build dependencies needed)
#   scripts/test-gpu.sh .gpu     uses binaries packed by scripts/gpu-bundle.sh on another machine
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 1 ]; then
  bundle=$(cd "$1" && pwd)
  [ -d "$bundle/bin" ] || tar -C "$bundle" -xJf "$bundle/bin.tar.xz" || exit 1
  bin="$bundle/bin"
  tests="$bundle/bin"
  export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  # The test binaries look for tests/data and ../shared where they were built.
  [ -e /work/main ] || { mkdir -p /work && ln -s "$root" /work/main; }
  [ -e /work/shared ] || ln -s "$bundle/shared" /work/shared
  stories="$bundle/shared/models/stories260K"
else
  cmake --preset release >/dev/null && cmake --build --preset release || exit 1
  bin="$root/build"
  tests="$root/build/tests"
  stories="$root/../shared/models/stories260K"
fi

results=()
failed=0
check() {
  local name=$1
  shift
  echo "=== $name"
  if "$@"; then
    results+=("PASS  $name")
  else
    results+=("FAIL  $name")
    failed=$((failed + 1))
  fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
check "CUDA kernels against the CPU backend" "$tests/test_backend" --gtest_filter='*Cuda*' --gtest_brief=1
check "CUDA models: transformers, CPU, graphs, batching" "$tests/test_engine" --gtest_filter='*Cuda*' --gtest_brief=1
# The same with every decode step of a 16-bit model on the persistent decode
# kernel (by default only steps of 3 to 8 short rows take it).
check "CUDA models, decode kernel at every batch size" env NATIVELM_DECODE_KERNEL=all "$tests/test_engine" \
  --gtest_filter='*Cuda*' --gtest_brief=1
# And with one-row steps on the cluster kernel (opt-in until it is measured faster).
check "CUDA models, cluster kernel at batch 1" env NATIVELM_DECODE_CLUSTER=1 timeout 300 "$tests/test_engine" \
  --gtest_filter='*Cuda*' --gtest_brief=1
memcheck=(compute-sanitizer --tool memcheck --error-exitcode 99)
check "memcheck: generate" "${memcheck[@]}" "$bin/nativelm" generate --device cuda --model-path "$stories" \
  --prompt "Once upon a time" --max-new-tokens 24
check "memcheck: sampled generate with penalties (logit edits on the GPU)" "${memcheck[@]}" "$bin/nativelm" generate \
  --device cuda --model-path "$stories" --prompt "Once upon a time" --max-new-tokens 24 --temperature 0.8 --seed 1 \
  --repetition-penalty 1.2 --frequency-penalty 0.5 --presence-penalty 0.3
check "memcheck: batched decode (graphs)" "${memcheck[@]}" "$bin/nativelm" bench_one_batch --device cuda \
  --model-path "$stories" --batch-size 5 --input-len 40 --output-len 12
check "memcheck: decode kernel" "${memcheck[@]}" "$tests/test_backend" --gtest_filter='*DecodeProgram*/bfloat16' \
  --gtest_brief=1
check "memcheck: cluster decode kernel" timeout 300 "${memcheck[@]}" "$tests/test_backend" \
  --gtest_filter='*DecodeCluster*/bfloat16' --gtest_brief=1
check "memcheck: batched decode (eager)" "${memcheck[@]}" "$bin/nativelm" bench_one_batch --device cuda \
  --model-path "$stories" --batch-size 3 --input-len 20 --output-len 6 --disable-cuda-graph

echo
echo "=== GPU test summary"
printf '%s\n' "${results[@]}"
echo "$failed of ${#results[@]} failed"
exit $((failed > 0))
