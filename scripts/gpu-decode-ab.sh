#!/usr/bin/env bash
# Decode speed under several settings side by side, in one run on one GPU
# (settings compared across calls land on different lent machines):
# bench_one_batch on a random-weight Qwen3-0.6B (bf16, seed 0) at batch 1
# (60/10 and 512/128) and batch 8 (60/32), each setting twice, alternating.
#   scripts/gpu-decode-ab.sh BUNDLE [SETTING...]
# BUNDLE is a folder packed by scripts/gpu-bundle.sh; a SETTING is a list
# of environment assignments ("-" for none), e.g.
#   scripts/gpu-decode-ab.sh .gpu - NATIVELM_DECODE_KERNEL=0 NATIVELM_DECODE_CLUSTER=1
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUNDLE [SETTING...]" >&2; exit 2; }
bundle=$(cd "$1" && pwd)
shift
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(-)
[ -d "$bundle/bin" ] || tar -C "$bundle" -xJf "$bundle/bin.tar.xz" || exit 1
export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
model=${MODEL:-/tmp/q06}
if [ ! -d "$model" ]; then
  tok=$(mktemp -d)
  gunzip -c "$bundle/qwen3-tokenizer/tokenizer.json.gz" >"$tok/tokenizer.json"
  cp "$bundle/qwen3-tokenizer/tokenizer_config.json" "$tok/"
  "$bundle/bin/make_random_checkpoint" --shape qwen3-0.6b --out "$model" --dtype bf16 --seed 0 \
    --tokenizer-dir "$tok" >/dev/null || exit 1
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader || true
decode() {  # SETTING BATCH INPUT OUTPUT: the median decode line's throughput
  local env_args=()
  [ "$1" = - ] || read -r -a env_args <<<"$1"
  env "${env_args[@]}" timeout 120 "$bundle/bin/nativelm" bench_one_batch --device cuda --model-path "$model" \
    --batch-size "$2" --input-len "$3" --output-len "$4" 2>&1 | grep -i "decode.*median" | tail -1
}
for rep in 1 2; do
  for s in "${settings[@]}"; do
    echo "--- $s (run $rep)"
    echo "  bs1 60/10:   $(decode "$s" 1 60 10)"
    echo "  bs1 512/128: $(decode "$s" 1 512 128)"
    echo "  bs8 60/32:   $(decode "$s" 8 60 32)"
  done
done
