#!/usr/bin/env node
// Independent reader for make_random_checkpoint's output (used by its ctest):
// derives the expected Qwen3 tensors from config.json, parses every
// safetensors file by hand and checks layout, shapes and value statistics.
//   node check_random_checkpoint.js DIR [--shards N] [--same-as DIR2] [--differs-from DIR3]
'use strict';
const fs = require('fs');
const path = require('path');

function die(msg) { console.error(`check_random_checkpoint: ${msg}`); process.exit(1); }
function expect(cond, msg) { if (!cond) die(msg); }

function expectedTensors(c) {
  const t = {'model.embed_tokens.weight': [c.vocab_size, c.hidden_size], 'model.norm.weight': [c.hidden_size]};
  const q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    Object.assign(t, {
      [p + 'input_layernorm.weight']: [c.hidden_size], [p + 'post_attention_layernorm.weight']: [c.hidden_size],
      [p + 'self_attn.q_proj.weight']: [q, c.hidden_size], [p + 'self_attn.k_proj.weight']: [kv, c.hidden_size],
      [p + 'self_attn.v_proj.weight']: [kv, c.hidden_size], [p + 'self_attn.o_proj.weight']: [c.hidden_size, q],
      [p + 'self_attn.q_norm.weight']: [c.head_dim], [p + 'self_attn.k_norm.weight']: [c.head_dim],
      [p + 'mlp.gate_proj.weight']: [c.intermediate_size, c.hidden_size],
      [p + 'mlp.up_proj.weight']: [c.intermediate_size, c.hidden_size],
      [p + 'mlp.down_proj.weight']: [c.hidden_size, c.intermediate_size]});
  }
  if (!c.tie_word_embeddings) t['lm_head.weight'] = [c.vocab_size, c.hidden_size];
  return t;
}

const decoders = {
  BF16: [2, (b, o) => { const u = new DataView(new ArrayBuffer(4)); u.setUint32(0, b.readUInt16LE(o) << 16); return u.getFloat32(0); }],
  F32: [4, (b, o) => b.readFloatLE(o)],
};

// Reads every tensor of every file in DIR: {name: {shape, values: Float64Array}}.
function readCheckpoint(dir) {
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  let files = ['model.safetensors'], index = null;
  if (fs.existsSync(indexPath)) {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    files = [...new Set(Object.values(index.weight_map))].sort();
  }
  const tensors = {};
  let total = 0;
  for (const f of files) {
    const buf = fs.readFileSync(path.join(dir, f));
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8 === 0, `${f}: header length ${n} not a multiple of 8`);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    const entries = Object.entries(header).filter(([k]) => k !== '__metadata__')
      .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
    let offset = 0;
    for (const [name, h] of entries) {
      expect(h.data_offsets[0] === offset, `${f}: ${name} does not start where the previous tensor ended`);
      const [size, read] = decoders[h.dtype] || die(`${f}: unexpected dtype ${h.dtype}`);
      const count = h.shape.reduce((a, b) => a * b, 1);
      expect(h.data_offsets[1] - h.data_offsets[0] === count * size, `${f}: ${name} byte size does not match its shape`);
      const values = new Float64Array(count);
      for (let i = 0; i < count; i++) values[i] = read(buf, 8 + n + offset + i * size);
      expect(!(name in tensors), `${name} appears twice`);
      tensors[name] = {shape: h.shape, values, dtype: h.dtype};
      if (index) expect(index.weight_map[name] === f, `index puts ${name} in ${index.weight_map[name]}, found in ${f}`);
      offset = h.data_offsets[1];
    }
    expect(buf.length === 8 + n + offset, `${f}: ${buf.length - 8 - n - offset} stray bytes after the data`);
    total += offset;
  }
  if (index) expect(index.metadata.total_size === total, `index total_size ${index.metadata.total_size} != ${total}`);
  return {tensors, files};
}

function checkValues(name, values) {
  if (/norm\.weight$/.test(name)) {
    expect(values.every(v => v === 1), `${name}: norm weights must all be 1.0`);
    return;
  }
  let sum = 0, sq = 0, max = 0;
  for (const v of values) { sum += v; sq += v * v; max = Math.max(max, Math.abs(v)); }
  const mean = sum / values.length, std = Math.sqrt(sq / values.length - mean * mean);
  // Expect N(0, 0.02)-like values; 6 standard errors of slack for the mean.
  expect(Math.abs(mean) < 6 * 0.02 / Math.sqrt(values.length), `${name}: mean ${mean} too far from 0`);
  expect(Math.abs(std - 0.02) < 0.02 * Math.max(0.03, 6 / Math.sqrt(values.length)), `${name}: std ${std}, want 0.02`);
  expect(max < 0.02 * 4, `${name}: |value| ${max} is beyond 4 sigma`);
}

function main() {
  const args = process.argv.slice(2);
  const dir = args[0];
  const opt = (flag) => { const i = args.indexOf(flag); return i < 0 ? undefined : args[i + 1]; };
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  expect(config.model_type === 'qwen3' && config.architectures[0] === 'Qwen3ForCausalLM', 'not a Qwen3 config');
  const gen = JSON.parse(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf8'));
  expect(Array.isArray(gen.eos_token_id), 'generation_config.json needs an eos_token_id list');
  const want = expectedTensors(config);
  const {tensors, files} = readCheckpoint(dir);
  expect(Object.keys(tensors).sort().join() === Object.keys(want).sort().join(),
         `tensor names differ from what config.json implies`);
  for (const [name, t] of Object.entries(tensors)) {
    expect(JSON.stringify(t.shape) === JSON.stringify(want[name]), `${name}: shape ${t.shape}, want ${want[name]}`);
    checkValues(name, t.values);
  }
  if (opt('--shards')) expect(files.length === Number(opt('--shards')), `${files.length} files, want ${opt('--shards')}`);
  const same = (other) => Object.entries(readCheckpoint(other).tensors)
    .every(([n, t]) => t.values.every((v, i) => v === tensors[n].values[i]));
  if (opt('--same-as')) expect(same(opt('--same-as')), `values differ from ${opt('--same-as')}`);
  if (opt('--differs-from')) expect(!same(opt('--differs-from')), `values equal those in ${opt('--differs-from')}`);
  console.log(`${dir}: ${Object.keys(tensors).length} tensors in ${files.length} file(s) OK`);
}

main();
