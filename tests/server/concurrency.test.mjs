// 64 concurrent streams through continuous batching: each equals the same
// request run on its own (greedy), and every KV page is free afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Server, openaiModule, generateCli } from './harness.mjs';

const { OpenAI } = openaiModule();
const server = new Server(['--max-running-requests', '64']);
let client;

before(async () => {
  await server.start();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { assert.equal((await server.stop()).code, 0); });

const NAMES = ['Lily', 'Tom', 'Sue', 'Max', 'Ben', 'Mia', 'Sam', 'Anna'];
const STARTS = ['Once upon a time, ', 'One day, ', 'The sun was shining and ', 'In a small house, ',
  'At the park, ', 'After lunch, ', 'Every morning, ', 'Long ago, '];
// 64 different prompts of different lengths, with different output lengths,
// so requests join and leave the batch at different steps.
const REQUESTS = Array.from({ length: 64 }, (_, i) => ({
  prompt: STARTS[i % 8] + NAMES[Math.floor(i / 8)] + (i % 3 === 0 ? ' was very happy because' : ''),
  max_tokens: 16 + (i * 7) % 48,
}));

async function streamText(r) {
  const stream = await client.completions.create({
    model: 'm', prompt: r.prompt, max_tokens: r.max_tokens, temperature: 0, stream: true,
  });
  let text = '';
  for await (const chunk of stream) for (const c of chunk.choices) text += c.text;
  return text;
}

test('64 concurrent streams equal their one-at-a-time greedy outputs', async () => {
  const alone = [];
  for (const r of REQUESTS) {
    const one = await client.completions.create({ model: 'm', prompt: r.prompt, max_tokens: r.max_tokens, temperature: 0 });
    alone.push(one.choices[0].text);
  }
  // The server's single-request results match the engine without the scheduler.
  for (const i of [0, 13, 42, 63]) assert.equal(alone[i], generateCli(REQUESTS[i].prompt, REQUESTS[i].max_tokens), `request ${i} vs generate`);

  const together = await Promise.all(REQUESTS.map(streamText));
  for (let i = 0; i < REQUESTS.length; i++) assert.equal(together[i], alone[i], `request ${i}`);

  const info = await server.serverInfo();
  assert.equal(info.running, 0);
  assert.equal(info.waiting, 0);
  assert.ok(info.kv_pages_total > 0);
  assert.equal(info.kv_pages_free, info.kv_pages_total, 'every KV page is free again');
});

// A burst of connections opened at once (as bench_serving does at rate inf):
// every one is accepted and answered. With a listen backlog of 5 some of
// them used to fail with a read error.
function completionOnNewConnection(i) {
  const body = JSON.stringify({ model: 'm', prompt: `Once upon a time ${i}`, max_tokens: 2, temperature: 0 });
  const url = new URL(`${server.url}/v1/completions`);
  return new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, data }));
    });
    req.on('error', (e) => resolve({ status: 0, data: String(e) }));
    req.end(body);
  });
}

test('300 connections opened at once are all answered', async () => {
  const results = await Promise.all(Array.from({ length: 300 }, (_, i) => completionOnNewConnection(i)));
  const failed = results.filter((r) => r.status !== 200);
  assert.equal(failed.length, 0, `${failed.length} failed, e.g. ${failed[0]?.status} ${failed[0]?.data}`);
  for (const r of results) assert.equal(JSON.parse(r.data).choices.length, 1);
});
