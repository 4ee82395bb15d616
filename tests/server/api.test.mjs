// The server through the official OpenAI client and raw HTTP: every route,
// the request parameters, streaming, auth, CORS, cancellation and shutdown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, CHAT_TEMPLATE, openaiModule, generateCli } from './harness.mjs';

const { OpenAI } = openaiModule();
const server = new Server(['--chat-template', CHAT_TEMPLATE, '--served-model-name', 'stories']);
let client;

before(async () => {
  await server.start();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' });
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, 'clean exit on SIGTERM');
});

test('completions: greedy text equals the engine run on its own', async () => {
  const prompt = 'Once upon a time';
  const r = await client.completions.create({ model: 'stories', prompt, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.model, 'stories');
  assert.match(r.id, /^cmpl-/);
  assert.ok(r.system_fingerprint);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].text, generateCli(prompt, 24));
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
  const tok = await server.postJson('/tokenize', { prompt });
  assert.equal(r.usage.prompt_tokens, tok.json.count);
});

test('completions: prompt as list of strings, token ids and token-id lists agree', async () => {
  const prompts = ['Once upon a time', 'The little dog'];
  const ids = await Promise.all(prompts.map(async (p) => (await server.postJson('/tokenize', { prompt: p })).json.tokens));
  const params = { model: 'stories', max_tokens: 12, temperature: 0 };
  const byText = await client.completions.create({ ...params, prompt: prompts });
  const byIds = await client.completions.create({ ...params, prompt: ids });
  const single = await client.completions.create({ ...params, prompt: ids[1] });
  assert.equal(byText.choices.length, 2);
  assert.deepEqual(byText.choices.map((c) => c.text), byIds.choices.map((c) => c.text));
  assert.equal(single.choices[0].text, byText.choices[1].text);
  assert.equal(byText.usage.prompt_tokens, ids[0].length + ids[1].length);
});

test('completions: max_tokens, stop, echo, n, seed, logprobs', async () => {
  const base = { model: 'stories', prompt: 'Once upon a time', temperature: 0 };
  const long = await client.completions.create({ ...base, max_tokens: 30, ignore_eos: true });
  assert.equal(long.choices[0].finish_reason, 'length');
  assert.equal(long.usage.completion_tokens, 30);
  // A stop string taken from the greedy text ends it there, without the stop string.
  const text = long.choices[0].text;
  const stop = text.slice(8, 11);
  const stopped = await client.completions.create({ ...base, max_tokens: 30, stop: [stop] });
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  assert.equal(stopped.choices[0].matched_stop, stop);
  assert.equal(stopped.choices[0].text, text.slice(0, text.indexOf(stop)));
  const echoed = await client.completions.create({ ...base, max_tokens: 5, echo: true });
  assert.ok(echoed.choices[0].text.startsWith('Once upon a time'));
  const sampled = { ...base, temperature: 1.0, max_tokens: 16, seed: 42, n: 3 };
  const a = await client.completions.create(sampled);
  const b = await client.completions.create(sampled);
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text), 'seeded sampling repeats');
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  const lp = await client.completions.create({ ...base, max_tokens: 4, logprobs: 2 });
  const l = lp.choices[0].logprobs;
  assert.equal(l.tokens.length, lp.usage.completion_tokens);
  assert.equal(l.token_logprobs.length, l.tokens.length);
  for (const [i, v] of l.token_logprobs.entries()) {
    assert.ok(v <= 0);
    const alternatives = Object.values(l.top_logprobs[i]);
    assert.ok(alternatives.length >= 1 && alternatives.length <= 2);
    assert.ok(Math.max(...alternatives) >= v - 1e-4, 'greedy picks the most likely token');
  }
});

test('completions: streaming matches the whole response, with usage', async () => {
  const params = { model: 'stories', prompt: 'Once upon a time', max_tokens: 20, temperature: 0 };
  const whole = await client.completions.create(params);
  const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('chat: template applied, whole and streamed agree', async () => {
  const messages = [{ role: 'user', content: 'What is the capital of France?' }];
  const r = await client.chat.completions.create({ model: 'stories', messages, temperature: 0, max_tokens: 20 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices[0].message.role, 'assistant');
  const rendered = '<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n';
  const tok = await server.postJson('/tokenize', { prompt: rendered, add_special_tokens: false });
  assert.equal(r.usage.prompt_tokens, tok.json.count);
  const stream = await client.chat.completions.create({
    model: 'stories', messages, temperature: 0, max_tokens: 20, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let role = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      text += c.delta.content ?? '';
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(text, r.choices[0].message.content);
  // The same prompt again: its full pages come from the prefix cache.
  assert.equal(r.usage.prompt_tokens_details.cached_tokens, 0);
  assert.ok(usage.prompt_tokens_details.cached_tokens > 0, 'repeat served from the prefix cache');
  assert.ok(usage.prompt_tokens_details.cached_tokens < usage.prompt_tokens);
  assert.deepEqual({ ...usage, prompt_tokens_details: null }, { ...r.usage, prompt_tokens_details: null });
  // Content as a list of text parts renders the same prompt.
  const parts = [{ role: 'user', content: [{ type: 'text', text: 'What is the capital' }, { type: 'text', text: ' of France?' }] }];
  const r2 = await client.chat.completions.create({ model: 'stories', messages: parts, temperature: 0, max_tokens: 20 });
  assert.equal(r2.choices[0].message.content, r.choices[0].message.content);
});

test('chat: logprobs and max_completion_tokens', async () => {
  const r = await client.chat.completions.create({
    model: 'stories', messages: [{ role: 'user', content: 'Hi' }], max_completion_tokens: 5, ignore_eos: true,
    logprobs: true, top_logprobs: 3,
  });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.choices[0].logprobs.content.length, 5);
  for (const t of r.choices[0].logprobs.content) {
    assert.equal(typeof t.token, 'string');
    assert.equal(t.top_logprobs.length, 3);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
  }
});

test('models, info, health, tokenize, detokenize, metrics', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['stories']);
  assert.equal((await client.models.retrieve('stories')).id, 'stories');
  assert.equal((await server.fetch('/v1/models/other')).status, 404);
  assert.equal((await server.fetch('/health')).status, 200);
  assert.equal((await server.fetch('/health_generate')).status, 200);
  const info = await (await server.fetch('/get_model_info')).json();
  assert.equal(info.is_generation, true);
  assert.equal(info.context_length, 512);
  const tok = await server.postJson('/tokenize', { prompt: 'Hello world', add_special_tokens: true });
  assert.deepEqual(Object.keys(tok.json).sort(), ['count', 'max_model_len', 'tokens']);
  assert.equal(tok.json.count, tok.json.tokens.length);
  assert.equal(tok.json.max_model_len, 512);
  assert.equal(tok.json.tokens[0], 1, 'BOS first');
  const detok = await server.postJson('/detokenize', { tokens: tok.json.tokens });
  assert.equal(detok.json.text, 'Hello world');
  const metrics = await (await server.fetch('/metrics')).text();
  for (const name of ['nativelm:num_requests_total', 'nativelm:prompt_tokens_total', 'nativelm:generation_tokens_total',
    'nativelm:num_running_reqs', 'nativelm:num_queue_reqs', 'nativelm:token_usage',
    'nativelm:time_to_first_token_seconds_bucket', 'nativelm:inter_token_latency_seconds_count']) {
    assert.ok(metrics.includes(name), `metrics has ${name}`);
  }
  assert.ok(Number(metrics.match(/^nativelm:generation_tokens_total (\d+)/m)[1]) > 0);
  // The request timeline: every finished request has a queue, prefill and decode time.
  const finished = Number(metrics.match(/^nativelm:e2e_request_latency_seconds_count (\d+)/m)[1]);
  for (const phase of ['queue', 'prefill', 'decode']) {
    const n = Number(metrics.match(new RegExp(`^nativelm:request_${phase}_time_seconds_count (\\d+)`, 'm'))[1]);
    assert.equal(n, finished, `${phase} timeline count`);
  }
  assert.equal((await server.postJson('/flush_cache', {})).status, 200);
});

test('SGLang /generate: text and input_ids, whole and streamed', async () => {
  const prompt = 'Once upon a time';
  const sp = { max_new_tokens: 16, temperature: 0 };
  const r = await server.postJson('/generate', { text: prompt, sampling_params: sp });
  assert.equal(r.status, 200);
  const completion = await client.completions.create({ model: 'stories', prompt, max_tokens: 16, temperature: 0 });
  assert.equal(r.json.text, completion.choices[0].text);
  assert.equal(r.json.meta_info.completion_tokens, r.json.output_ids.length);
  assert.ok(['stop', 'length'].includes(r.json.meta_info.finish_reason.type));
  const ids = (await server.postJson('/tokenize', { prompt })).json.tokens;
  const byIds = await server.postJson('/generate', { input_ids: ids, sampling_params: sp });
  assert.equal(byIds.json.text, r.json.text);
  const streamed = await server.fetch('/generate', {
    method: 'POST', body: JSON.stringify({ text: prompt, sampling_params: sp, stream: true }),
  });
  const events = (await streamed.text()).split('\n\n').filter((e) => e.startsWith('data: '));
  assert.equal(events.at(-1), 'data: [DONE]');
  const last = JSON.parse(events.at(-2).slice(6));
  assert.equal(last.text, r.json.text, 'streamed /generate text is cumulative');
});

test('client disconnect cancels the request', async () => {
  const aborted = () => server.fetch('/metrics').then((r) => r.text())
    .then((t) => Number(t.match(/finish_reason="abort"} (\d+)/)[1]));
  const before = await aborted();
  const controller = new AbortController();
  const res = await server.fetch('/v1/completions', {
    method: 'POST', signal: controller.signal, headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once', max_tokens: 480, ignore_eos: true, stream: true }),
  });
  const reader = res.body.getReader();
  await reader.read();
  controller.abort();
  for (let i = 0; i < 100 && (await aborted()) === before; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await aborted(), before + 1);
  const info = await server.serverInfo();
  assert.equal(info.running + info.waiting, 0);
});

test('/abort_request ends a running request with finish_reason abort', async () => {
  const pending = server.postJson('/generate', {
    text: 'Once', rid: 'to-abort', sampling_params: { max_new_tokens: 480, ignore_eos: true },
  });
  let r = { status: 404 };
  for (let i = 0; i < 100 && r.status === 404; i++) r = await server.postJson('/abort_request', { rid: 'to-abort' });
  assert.equal(r.status, 200);
  const done = await pending;
  assert.equal(done.json.meta_info.finish_reason.type, 'abort');
  assert.equal((await server.postJson('/abort_request', { rid: 'to-abort' })).status, 404);
});

test('--api-key and CORS', async () => {
  const secured = await new Server(['--api-key', 'sk-test', '--enable-cors']).start();
  try {
    const body = { prompt: 'Hi', max_tokens: 2 };
    assert.equal((await secured.postJson('/v1/completions', body)).status, 401);
    const wrong = await secured.postJson('/v1/completions', body, { Authorization: 'Bearer sk-wrong' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.type, 'authentication_error');
    const ok = await secured.postJson('/v1/completions', body, { Authorization: 'Bearer sk-test' });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), '*');
    assert.equal((await secured.fetch('/health')).status, 200, 'health needs no key');
    const keyed = new OpenAI({ baseURL: `${secured.url}/v1`, apiKey: 'sk-test' });
    assert.equal((await keyed.models.list()).data.length, 1);
  } finally {
    assert.equal((await secured.stop('SIGINT')).code, 0);
  }
});

test('SIGTERM aborts in-flight streams and exits cleanly', async () => {
  const s = await new Server().start();
  const res = await s.fetch('/v1/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once', max_tokens: 500, ignore_eos: true, stream: true }),
  });
  const reader = res.body.getReader();
  await reader.read();
  const exit = s.stop('SIGTERM');
  let rest = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    rest += Buffer.from(value).toString();
  }
  assert.equal((await exit).code, 0);
  assert.match(rest, /"finish_reason":"(abort|length)"/);
  assert.ok(rest.endsWith('data: [DONE]\n\n'));
});
