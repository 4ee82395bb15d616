#!/usr/bin/env python3
"""Trains nativelm's demo model: a small Qwen3 on Tiny Shakespeare.

Makes two complete Hugging Face folders that share one byte-level BPE
tokenizer: the demo model and a 2-layer draft model (for speculative
decoding). The last 5% of the corpus is held out; from the rest, the last
~5% again is a validation slice that only picks the training run and step.
Weights are saved in bfloat16; the held-out perplexity and greedy samples in
each folder's reference.json are computed from the saved files, reloaded
and upcast to float32 on the CPU (the way nativelm computes).

Needs a CUDA GPU, torch, transformers 5.x and tokenizers; no network.
    python3 tools/train_demo_model.py --corpus tinyshakespeare.txt --out models
"""
import argparse
import copy
import hashlib
import json
import math
import os
import time

import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, GenerationConfig, Qwen3Config, Qwen3ForCausalLM

VOCAB = 4096
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ENDOFTEXT, IM_START, IM_END = 0, 1, 2  # trainer puts special tokens first
CONTEXT = 512
PPL_WINDOW = 512
SAMPLE_PROMPTS = ["ROMEO:", "JULIET:\n", "First Citizen:\n"]
SAMPLE_TOKENS = 64
CHATML = (
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "{{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}\n")

MAIN = dict(name="demo-shakespeare", hidden=384, layers=8, heads=6, kv_heads=2,
            intermediate=1024)
DRAFT = dict(name="demo-shakespeare-draft", hidden=256, layers=2, heads=4, kv_heads=2,
             intermediate=768)


# ---------------------------------------------------------------- data

def paragraph_cut(text, fraction):
    """First paragraph start at or after fraction * len(text)."""
    return text.index("\n\n", int(len(text) * fraction)) + 2


def split_corpus(text):
    test_start = paragraph_cut(text, 0.95)
    val_start = paragraph_cut(text, 0.90)
    return dict(train=(0, val_start), val=(val_start, test_start),
                test=(test_start, len(text)))


def train_tokenizer(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, f"{s} got id {tok.token_to_id(s)}"
    assert tok.get_vocab_size() <= VOCAB
    return tok


def tokenizer_config():
    added = {str(i): dict(content=s, lstrip=False, normalized=False, rstrip=False,
                          single_word=False, special=True) for i, s in enumerate(SPECIALS)}
    return dict(tokenizer_class="PreTrainedTokenizerFast", added_tokens_decoder=added,
                bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
                unk_token=None, add_bos_token=False, add_eos_token=False,
                clean_up_tokenization_spaces=False, model_max_length=CONTEXT,
                chat_template=CHATML)


def save_tokenizer(tok, folder):
    tok.save(os.path.join(folder, "tokenizer.json"))
    write_json(os.path.join(folder, "tokenizer_config.json"), tokenizer_config(), indent=2)


def check_transformers_tokenizer(folder, tok, sample_text):
    """The folder must load in transformers and agree with the tokenizers library."""
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(folder)
    ids = hf(sample_text, add_special_tokens=True)["input_ids"]
    if ids != tok.encode(sample_text).ids:
        raise RuntimeError("transformers and tokenizers disagree on the sample text")
    chat = hf.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                  add_generation_prompt=True)
    want = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    if chat != want:
        raise RuntimeError(f"chat template renders {chat!r}, want {want!r}")
    return dict(class_name=type(hf).__name__, eos_token=hf.eos_token, bos_token=hf.bos_token)


# ---------------------------------------------------------------- model

def make_config(shape):
    return Qwen3Config(
        vocab_size=VOCAB, hidden_size=shape["hidden"], intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"], head_dim=64, max_position_embeddings=CONTEXT,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rms_norm_eps=1e-6,
        tie_word_embeddings=True, initializer_range=0.02, attention_dropout=0.0,
        bos_token_id=ENDOFTEXT, eos_token_id=IM_END)


def generation_config():
    return GenerationConfig(bos_token_id=ENDOFTEXT, eos_token_id=[ENDOFTEXT, IM_END],
                            pad_token_id=ENDOFTEXT, do_sample=True, temperature=0.8,
                            top_k=40, top_p=0.95)


def add_residual_dropout(model, p):
    """Qwen3 has no residual dropout; the corpus is tiny, so add GPT-2-style
    dropout on the embedding and on every attention/MLP output, for training only."""
    def hook(module, inputs, output):
        if isinstance(output, tuple):
            return (F.dropout(output[0], p, module.training),) + tuple(output[1:])
        return F.dropout(output, p, module.training)
    mods = [model.model.embed_tokens]
    for layer in model.model.layers:
        mods += [layer.self_attn, layer.mlp]
    return [m.register_forward_hook(hook) for m in mods]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- training

def batches(data, batch, length, gen):
    starts = torch.randint(0, data.numel() - length - 1, (batch,), generator=gen,
                           device=data.device)
    idx = starts[:, None] + torch.arange(length + 1, device=data.device)
    chunk = data[idx]
    return chunk[:, :-1], chunk[:, 1:]


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def val_loss(model, data, length):
    model.eval()
    n = (data.numel() - 1) // length
    x = data[: n * length].view(n, length)
    y = data[1: n * length + 1].view(n, length)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(input_ids=x).logits
    model.train()
    return F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1)).item()


def make_optimizer(model, lr):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([dict(params=decay, weight_decay=0.1),
                              dict(params=other, weight_decay=0.0)],
                             lr=lr, betas=(0.9, 0.95), fused=True)


def train_run(shape, steps, data, args, seed):
    """One training run with a cosine schedule of `steps` steps; keeps the
    state with the lowest validation loss."""
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(make_config(shape)).cuda().train()
    hooks = add_residual_dropout(model, args.dropout)
    opt = make_optimizer(model, args.lr)
    gen = torch.Generator(device="cuda").manual_seed(seed)
    best = dict(loss=float("inf"), step=-1, state=None)
    log, t0 = [], time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, args.lr, args.warmup)
        x, y = batches(data["train"], args.batch, CONTEXT, gen)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == steps:
            v = val_loss(model, data["val"], CONTEXT)
            log.append(dict(step=step + 1, train_loss=round(loss.item(), 4),
                            val_loss=round(v, 4), seconds=round(time.time() - t0, 1)))
            print(f"  {shape['name']} schedule {steps} step {step + 1}: train "
                  f"{loss.item():.3f} val {v:.3f} ({time.time() - t0:.0f}s)", flush=True)
            if v < best["loss"]:
                best = dict(loss=v, step=step + 1,
                            state={k: t.detach().cpu().clone() for k, t in model.state_dict().items()})
    for h in hooks:
        h.remove()
    return dict(schedule=steps, best_step=best["step"], best_val_loss=best["loss"],
                state=best["state"], log=log, seconds=round(time.time() - t0, 1))


def train_model(shape, data, args):
    """Tries each schedule length; picks the best by validation loss."""
    runs = [train_run(shape, steps, data, args, args.seed) for steps in args.schedules]
    best = min(runs, key=lambda r: r["best_val_loss"])
    model = Qwen3ForCausalLM(make_config(shape))
    model.load_state_dict(best["state"])
    summary = [{k: v for k, v in r.items() if k != "state"} for r in runs]
    return model, dict(chosen_schedule=best["schedule"], chosen_step=best["best_step"],
                       chosen_val_loss=best["best_val_loss"], runs=summary)


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def perplexity(model, ids):
    """exp(mean NLL) over consecutive non-overlapping windows of PPL_WINDOW
    tokens, each evaluated from a fresh context."""
    windows = [ids[i:i + PPL_WINDOW] for i in range(0, len(ids), PPL_WINDOW)]
    windows = [w for w in windows if len(w) >= 2]
    total, count = 0.0, 0
    for w in windows:
        x = torch.tensor([w])
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), dim=-1)
        nll = -logp.gather(1, x[0, 1:, None])[:, 0]
        total += nll.double().sum().item()
        count += len(w) - 1
    return dict(ppl=math.exp(total / count), mean_nll=total / count, predicted_tokens=count,
                windows=len(windows), window_tokens=PPL_WINDOW, total_nll=total)


@torch.no_grad()
def greedy_sample(model, tok, prompt):
    prompt_ids = tok.encode(prompt).ids
    inp = torch.tensor([prompt_ids])
    model.generation_config.eos_token_id = None
    out = model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=False,
                         max_new_tokens=SAMPLE_TOKENS, eos_token_id=None,
                         pad_token_id=ENDOFTEXT)[0].tolist()
    new = out[len(prompt_ids):]
    # One teacher-forced pass over the whole sequence: each generated token must
    # be the argmax at its position; the smallest top-1/top-2 gap says how safe
    # the sample is as a cross-implementation test.
    logits = model(input_ids=torch.tensor([out])).logits[0].float()
    steps = logits[len(prompt_ids) - 1: len(out) - 1]
    top = torch.topk(steps, 2, dim=-1)
    argmax_ok = top.indices[:, 0].tolist() == new
    scale = steps.abs().amax(dim=-1).clamp(min=1.0)
    margin = ((top.values[:, 0] - top.values[:, 1]) / scale).min().item()
    return dict(prompt=prompt, prompt_ids=prompt_ids, generated_ids=new,
                generated_text=tok.decode(new, skip_special_tokens=False),
                full_text=tok.decode(out, skip_special_tokens=False),
                greedy_min_margin=margin, teacher_forced_argmax_agrees=argmax_ok,
                last_logits=logits[len(prompt_ids) - 1].tolist())


def evaluate_saved(folder, tok, corpus, spans):
    """Everything measured from the saved bf16 files, upcast to float32."""
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    a, b = spans["test"]
    test_ids = tok.encode(corpus[a:b]).ids
    va, vb = spans["val"]
    return dict(
        heldout=dict(perplexity(model, test_ids), char_span=[a, b],
                     sha256=hashlib.sha256(corpus[a:b].encode()).hexdigest()),
        validation=dict(perplexity(model, tok.encode(corpus[va:vb]).ids), char_span=[va, vb]),
        samples=[greedy_sample(model, tok, p) for p in SAMPLE_PROMPTS])


# ---------------------------------------------------------------- output

def write_json(path, obj, indent=None):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def save_model(model, shape, folder, tok):
    os.makedirs(folder, exist_ok=True)
    model = model.to(torch.bfloat16)
    model.generation_config = generation_config()
    model.save_pretrained(folder)
    save_tokenizer(tok, folder)


def describe(spans, corpus_sha, train_info, args, model):
    return dict(
        corpus=dict(file="tinyshakespeare.txt", sha256=corpus_sha, chars=spans["test"][1],
                    train_span=list(spans["train"]), validation_span=list(spans["val"]),
                    heldout_span=list(spans["test"]), tokenizer_trained_on=[0, spans["test"][0]]),
        perplexity_definition=(
            "Tokenize the held-out text (chars heldout_span of tinyshakespeare.txt) once with "
            "tokenizer.json, no special tokens; cut the ids into consecutive non-overlapping "
            f"windows of {PPL_WINDOW} tokens (the last one shorter); run each window from a "
            "fresh context; ppl = exp(sum of -log p(token | window prefix) over every token "
            "but each window's first / number of such tokens). Computed with the saved bf16 "
            "weights upcast to float32 (model.float()) on CPU."),
        parameters=n_params(model), training=train_info,
        hyperparameters=dict(batch=args.batch, context=CONTEXT, lr=args.lr, warmup=args.warmup,
                             dropout=args.dropout, weight_decay=0.1, betas=[0.9, 0.95],
                             grad_clip=1.0, schedules=args.schedules, seed=args.seed,
                             precision="bf16 autocast, fp32 master weights, AdamW"),
        transformers_version=transformers.__version__, torch_version=torch.__version__)


def main():
    ap = argparse.ArgumentParser(description="Train nativelm's demo Qwen3 on Tiny Shakespeare")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True, help="folder that gets demo-shakespeare[-draft]/")
    ap.add_argument("--schedules", type=lambda s: [int(x) for x in s.split(",")],
                    default=[400, 800, 1600], help="run lengths to try, in steps")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    with open(args.corpus, encoding="utf-8") as f:
        corpus = f.read()
    corpus_sha = hashlib.sha256(corpus.encode()).hexdigest()
    spans = split_corpus(corpus)
    t0 = time.time()
    tok = train_tokenizer(corpus[: spans["test"][0]])
    print(f"tokenizer: {tok.get_vocab_size()} tokens ({time.time() - t0:.1f}s)", flush=True)
    data = {k: torch.tensor(tok.encode(corpus[a:b]).ids, device="cuda")
            for k, (a, b) in spans.items() if k != "test"}
    print({k: v.numel() for k, v in data.items()}, flush=True)
    for shape in (MAIN, DRAFT):
        model, info = train_model(shape, data, args)
        folder = os.path.join(args.out, shape["name"])
        save_model(model, shape, folder, tok)
        torch.backends.cuda.matmul.allow_tf32 = False
        result = evaluate_saved(folder, tok, corpus, spans)
        result.update(describe(spans, corpus_sha, info, args, model))
        try:
            result["transformers_tokenizer"] = check_transformers_tokenizer(
                folder, tok, corpus[spans["test"][0]:][:2000])
        except Exception as e:  # recorded, and shown below; the files are still useful
            result["transformers_tokenizer"] = dict(error=repr(e))
        write_json(os.path.join(folder, "reference.json"), result, indent=1)
        show(shape, result)


def show(shape, result):
    h = result["heldout"]
    print(f"== {shape['name']}: {result['parameters']} params, held-out ppl {h['ppl']:.4f} "
          f"({h['predicted_tokens']} tokens), validation ppl {result['validation']['ppl']:.4f}, "
          f"chosen {result['training']['chosen_schedule']}@{result['training']['chosen_step']}")
    print(f"   tokenizer check: {result['transformers_tokenizer']}")
    for s in result["samples"]:
        print(f"--- {s['prompt']!r} margin {s['greedy_min_margin']:.3g} "
              f"argmax_ok {s['teacher_forced_argmax_agrees']}\n{s['full_text']}", flush=True)


if __name__ == "__main__":
    main()
