#!/usr/bin/python3
"""Renders a chat template as transformers' apply_chat_template does (jinja2
with trim_blocks, lstrip_blocks, loop controls and its tojson), as the
reference the server's prompt is checked against.

stdin: {"template": SOURCE, "context": {messages, tools, add_generation_prompt, ...}}
stdout: the rendered prompt
"""
import json
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    request = json.load(sys.stdin)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    sys.stdout.write(env.from_string(request["template"]).render(**request["context"]))


if __name__ == "__main__":
    main()
