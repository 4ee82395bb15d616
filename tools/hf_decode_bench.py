# transformers on a checkpoint, batch 1, on the GPU: prefill of 512 random
# tokens and greedy decode of 128 more, for docs/benchmarks.md.
# Usage: python3 tools/hf_decode_bench.py MODEL_DIR
import sys
import time

import torch
from transformers import AutoModelForCausalLM

path = sys.argv[1]
m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).cuda().eval()
ids = torch.randint(0, 10000, (1, 512), device="cuda")
with torch.no_grad():
    m.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
    torch.cuda.synchronize()
    t = time.time()
    m(ids)
    torch.cuda.synchronize()
    prefill = time.time() - t
    t = time.time()
    m.generate(ids, max_new_tokens=128, min_new_tokens=128, do_sample=False)
    torch.cuda.synchronize()
    total = time.time() - t
print(f"transformers eager: prefill 512 {512 / prefill:.0f} tok/s; "
      f"decode {128 / (total - prefill):.1f} tok/s (generate of 128 after 512 took {total:.2f} s)")
