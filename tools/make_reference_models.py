#!/usr/bin/env python3
"""Tiny random-weight reference checkpoints for nativelm's model tests.

Each checkpoint is built by Hugging Face transformers itself (config class +
XForCausalLM, save_pretrained), then reloaded from disk in float32 and run on
the CPU to record the reference: the full last-position logits of a few
prompts and 16 greedy tokens. nativelm must reproduce these.

Needs torch, transformers (5.x) and safetensors; no network. Usage:
    python3 tools/make_reference_models.py --out DIR [--only NAME ...]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback

import torch
import transformers
from transformers import AutoModelForCausalLM

NEW_TOKENS = 16
PROMPT_LENGTHS = (1, 7, 40)
# Greedy steps whose top-1/top-2 logit gap, relative to max(1, max|logit|),
# is below this are too fragile for a cross-implementation test.
MIN_RELATIVE_MARGIN = 2e-3
MAX_SEED_TRIES = 200


def rope(theta, **scaling):
    params = {"rope_type": scaling.pop("rope_type", "default"), "rope_theta": theta}
    params.update(scaling)
    return params


# head_dim 16 and theta 1e4: pair 0 keeps its frequency, pairs 1-2 are smoothed,
# the rest divided by factor (original_max_position_embeddings=64).
LLAMA3_ROPE = rope(10000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                   high_freq_factor=4.0, original_max_position_embeddings=64)
# head_dim 32 and theta 5e5 put one frequency pair in each llama3 band
# (unchanged, smoothed, divided by factor) for original_max_position_embeddings=64.
LLAMA3_CLASSIC_ROPE = rope(500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                           high_freq_factor=4.0, original_max_position_embeddings=64)

COMMON = dict(vocab_size=512, max_position_embeddings=512, rms_norm_eps=1e-6,
              hidden_act="silu", bos_token_id=1, eos_token_id=2)

SPECS = {
    "qwen3_gqa2": dict(
        arch="Qwen3", save_dtype=torch.float32,
        config=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                    tie_word_embeddings=True, rope_parameters=rope(1000000.0)),
        about="Qwen3, tied embeddings, q_norm/k_norm, GQA 4:2, head_dim 32 != 64/4"),
    "llama3_gqa4_untied": dict(
        arch="Llama", save_dtype=torch.float32,
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=8, num_key_value_heads=2, head_dim=16,
                    tie_word_embeddings=False, rope_parameters=LLAMA3_ROPE),
        about="Llama, llama3 rope scaling (factor 8, low 1, high 4, original 64), "
              "GQA 8:2, head_dim 16 != 64/8, untied lm_head"),
    "qwen2_bias_mqa": dict(
        arch="Qwen2", save_dtype=torch.float32, random_bias=True,
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=1,
                    tie_word_embeddings=False, rope_parameters=rope(10000.0)),
        about="Qwen2, non-zero q/k/v biases, MQA 4:1, untied"),
    "mistral_mha": dict(
        arch="Mistral", save_dtype=torch.float32,
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                    num_attention_heads=4, num_key_value_heads=4, sliding_window=None,
                    tie_word_embeddings=False, rope_parameters=rope(10000.0)),
        about="Mistral, sliding_window null, MHA 4:4, 3 layers, untied"),
    "qwen3_bf16_sharded": dict(
        arch="Qwen3", save_dtype=torch.bfloat16, max_shard_size="64KB",
        config=dict(hidden_size=64, intermediate_size=192, num_hidden_layers=3,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                    tie_word_embeddings=True, rope_parameters=rope(1000000.0)),
        about="Qwen3 saved in bfloat16, sharded (model.safetensors.index.json)"),
    "llama_f16": dict(
        arch="Llama", save_dtype=torch.float16,
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2,
                    tie_word_embeddings=True, rope_parameters=rope(10000.0)),
        about="Llama saved in float16, tied embeddings, GQA 4:2"),
    "llama_classic_config": dict(
        arch="Llama", save_dtype=torch.float32, classic=True,
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                    tie_word_embeddings=False, rope_parameters=LLAMA3_CLASSIC_ROPE),
        about="Llama with config.json in the classic Hub form (rope_theta, "
              "rope_scaling dict with llama3 scaling, torch_dtype)"),
}


def build_model(spec, seed):
    config_cls = getattr(transformers, spec["arch"] + "Config")
    model_cls = getattr(transformers, spec["arch"] + "ForCausalLM")
    config = config_cls(**COMMON, **spec["config"], initializer_range=0.2)
    model = model_cls(config).eval()
    randomize(model, seed, spec.get("random_bias", False))
    return model


def randomize(model, seed, random_bias):
    """Large weights so that logits are far from flat; norms not 1 so that a
    missing norm-weight multiply shows; biases non-zero so a dropped bias shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith(".bias"):
                scale = 0.5 if random_bias else 0.0
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    if random_bias and not any(n.endswith("q_proj.bias") for n, _ in model.named_parameters()):
        raise RuntimeError("spec asks for random biases but the model has no q_proj.bias")


def make_prompts(seed, vocab):
    gen = torch.Generator().manual_seed(seed + 7919)
    # Token ids 0..2 are the pad/bos/eos ids in the configs; prompts avoid them.
    return [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]


def greedy_reference(model, prompt):
    """Greedy decoding by full recomputation (no KV cache), with step margins."""
    ids = list(prompt)
    margins, last_logits = [], None
    with torch.no_grad():
        for step in range(NEW_TOKENS):
            logits = model(torch.tensor([ids])).logits[0, -1].float()
            if step == 0:
                last_logits = logits.clone()
            top = torch.topk(logits, 2)
            scale = max(1.0, logits.abs().max().item())
            margins.append((top.values[0] - top.values[1]).item() / scale)
            ids.append(int(top.indices[0]))
    return last_logits, ids[len(prompt):], min(margins)


def generate_ids(model, prompt):
    """transformers' own generate(), with end-of-sequence disabled."""
    model.generation_config.eos_token_id = None
    inp = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=False,
                             max_new_tokens=NEW_TOKENS, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def references(model, prompts):
    cases = []
    for prompt in prompts:
        logits, greedy, margin = greedy_reference(model, prompt)
        generated = generate_ids(model, prompt)
        if generated != greedy:
            raise RuntimeError(f"generate() {generated} != greedy loop {greedy}")
        cases.append(dict(prompt_ids=prompt, last_logits=logits.tolist(),
                          greedy_ids=greedy, greedy_min_margin=margin))
    return cases


def reload_fp32(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def save(model, spec, path):
    model.to(spec["save_dtype"])
    kwargs = {}
    if "max_shard_size" in spec:
        kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(path, **kwargs)
    model.float()


def to_classic_config(path):
    """Rewrites config.json from transformers 5's form (rope_parameters, dtype)
    into the form most Hub checkpoints still have (rope_theta, rope_scaling,
    torch_dtype)."""
    file = os.path.join(path, "config.json")
    with open(file) as f:
        cfg = json.load(f)
    if "rope_parameters" not in cfg:
        raise RuntimeError(f"expected rope_parameters in {file}: {cfg}")
    rope_params = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope_params.pop("rope_theta")
    rope_params.pop("partial_rotary_factor", None)
    cfg["rope_scaling"] = None if rope_params.get("rope_type") == "default" else rope_params
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    with open(file, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def same_cases(a, b, what):
    for x, y in zip(a, b):
        diff = max(abs(p - q) for p, q in zip(x["last_logits"], y["last_logits"]))
        if diff > 1e-6 or x["greedy_ids"] != y["greedy_ids"]:
            raise RuntimeError(f"{what}: logits differ by {diff} or greedy ids differ")


def attempt(name, spec, seed, path):
    """Builds, saves and reloads one candidate; returns its reference cases."""
    model = build_model(spec, seed)
    prompts = make_prompts(seed, model.config.vocab_size)
    save(model, spec, path)
    cases = references(reload_fp32(path), prompts)
    if spec.get("classic"):
        to_classic_config(path)
        classic = reload_fp32(path)
        if getattr(classic.config, "rope_parameters", {}).get("rope_type") != "llama3":
            raise RuntimeError(f"classic config lost its rope scaling: {classic.config}")
        same_cases(cases, references(classic, prompts), "classic config reload")
    return cases


def make_one(name, spec, out_dir, base_seed):
    for seed in range(base_seed, base_seed + MAX_SEED_TRIES):
        tmp = tempfile.mkdtemp(prefix=name)
        cases = attempt(name, spec, seed, tmp)
        margin = min(c["greedy_min_margin"] for c in cases)
        if margin >= MIN_RELATIVE_MARGIN:
            break
        shutil.rmtree(tmp)
    else:
        raise RuntimeError(f"{name}: no seed gave greedy margins >= {MIN_RELATIVE_MARGIN}")
    dest = os.path.join(out_dir, name)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.move(tmp, dest)
    write_reference(dest, name, spec, seed, cases)
    print(f"{name}: seed {seed}, min relative margin {margin:.4g}, files "
          f"{sorted(os.listdir(dest))}", flush=True)


def write_reference(dest, name, spec, seed, cases):
    ref = dict(
        name=name, description=spec["about"], seed=seed,
        saved_dtype=str(spec["save_dtype"]).replace("torch.", ""),
        reference_dtype="float32",
        how="reloaded from this folder with AutoModelForCausalLM.from_pretrained("
            "dtype=float32) on CPU; last_logits = logits at the last prompt position; "
            "greedy_ids = generate(do_sample=False, max_new_tokens=16) with eos "
            "disabled, checked against a no-cache argmax loop; greedy_min_margin = "
            "min over steps of (top1 - top2) / max(1, max|logit|)",
        transformers_version=transformers.__version__, torch_version=torch.__version__,
        prompts=cases)
    with open(os.path.join(dest, "reference.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help="names to build (default: all)")
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    os.makedirs(args.out, exist_ok=True)
    names = args.only or list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        sys.exit(f"unknown checkpoint(s) {unknown}; known: {', '.join(SPECS)}")
    failed = []
    for name in names:
        try:
            make_one(name, SPECS[name], args.out, args.seed)
        except Exception:  # report every broken checkpoint, not just the first
            traceback.print_exc()
            failed.append(name)
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
