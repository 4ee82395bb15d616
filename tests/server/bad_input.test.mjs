// Every malformed request gets an OpenAI-shaped error with the right status,
// and the server is still healthy afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server } from './harness.mjs';

const LIMIT = 4096;
const server = new Server(['--max-request-bytes', String(LIMIT), '--api-key', 'sk-key']);
const AUTH = { Authorization: 'Bearer sk-key', 'Content-Type': 'application/json' };

before(async () => { await server.start(); });
after(async () => { assert.equal((await server.stop()).code, 0); });

const chat = (extra) => ({ model: 'm', messages: [{ role: 'user', content: 'Hi' }], ...extra });
const comp = (extra) => ({ model: 'm', prompt: 'Hi', ...extra });
const invalidUtf8 = Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);

// [name, method, route, body (object, string or Buffer), status, param (or undefined), message pattern]
const CASES = [
  ['invalid JSON', 'POST', '/v1/completions', '{"prompt": "Hi",', 400, undefined, /Invalid JSON/],
  ['body not an object', 'POST', '/v1/completions', '[1, 2]', 400, undefined, /JSON object/],
  ['invalid UTF-8', 'POST', '/v1/completions', invalidUtf8, 400, undefined, /UTF-8/],
  ['missing prompt', 'POST', '/v1/completions', { model: 'm' }, 400, 'prompt', /required/],
  ['prompt wrong type', 'POST', '/v1/completions', comp({ prompt: 42 }), 400, 'prompt', /prompt/],
  ['empty prompt list', 'POST', '/v1/completions', comp({ prompt: [] }), 400, 'prompt', /empty/],
  ['token id out of vocab', 'POST', '/v1/completions', comp({ prompt: [1, 99999] }), 400, 'prompt', /99999/],
  ['negative token id', 'POST', '/v1/completions', comp({ prompt: [[1, -3]] }), 400, 'prompt', /-3/],
  ['max_tokens wrong type', 'POST', '/v1/completions', comp({ max_tokens: 'ten' }), 400, 'max_tokens', /integer/],
  ['max_tokens zero', 'POST', '/v1/completions', comp({ max_tokens: 0 }), 400, 'max_tokens', /max_tokens/],
  ['max_tokens fractional', 'POST', '/v1/completions', comp({ max_tokens: 2.5 }), 400, 'max_tokens', /integer/],
  ['beyond the context', 'POST', '/v1/completions', comp({ max_tokens: 600 }), 400, 'max_tokens', /512.*60\d.*600/s],
  ['n zero', 'POST', '/v1/completions', comp({ n: 0 }), 400, 'n', /'n' must be in/],
  ['n too large', 'POST', '/v1/completions', comp({ n: 1000 }), 400, 'n', /'n' must be in/],
  ['temperature negative', 'POST', '/v1/completions', comp({ temperature: -1 }), 400, 'temperature', /temperature/],
  ['temperature wrong type', 'POST', '/v1/completions', comp({ temperature: 'hot' }), 400, 'temperature', /number/],
  ['top_p zero', 'POST', '/v1/completions', comp({ top_p: 0 }), 400, 'top_p', /top_p/],
  ['stop wrong type', 'POST', '/v1/completions', comp({ stop: 5 }), 400, 'stop', /string/],
  ['stop list with a number', 'POST', '/v1/completions', comp({ stop: ['a', 1] }), 400, 'stop', /string/],
  ['stream wrong type', 'POST', '/v1/completions', comp({ stream: 'yes' }), 400, 'stream', /boolean/],
  ['logprobs too large', 'POST', '/v1/completions', comp({ logprobs: 50 }), 400, 'logprobs', /logprobs/],
  ['logit_bias bad key', 'POST', '/v1/completions', comp({ logit_bias: { abc: 1 } }), 400, 'logit_bias', /abc/],
  ['logit_bias out of range', 'POST', '/v1/completions', comp({ logit_bias: { 5: 500 } }), 400, 'logit_bias', /-100, 100/],
  ['stop_token_ids out of vocab', 'POST', '/v1/completions', comp({ stop_token_ids: [100000] }), 400, 'stop_token_ids', /100000/],
  ['chat without a template', 'POST', '/v1/chat/completions', chat({}), 400, undefined, /chat template/],
  ['chat missing messages', 'POST', '/v1/chat/completions', { model: 'm' }, 400, 'messages', /required/],
  ['chat messages not a list', 'POST', '/v1/chat/completions', { messages: 'hi' }, 400, 'messages', /list/],
  ['chat message without role', 'POST', '/v1/chat/completions', { messages: [{ content: 'x' }] }, 400, 'messages[0].role', /role/],
  ['chat top_logprobs without logprobs', 'POST', '/v1/chat/completions', chat({ top_logprobs: 2 }), 400, 'top_logprobs', /logprobs/],
  ['generate with neither text nor ids', 'POST', '/generate', { sampling_params: {} }, 400, 'text', /exactly one/],
  ['generate sampling_params not an object', 'POST', '/generate', { text: 'Hi', sampling_params: 3 }, 400, 'sampling_params', /object/],
  ['tokenize without prompt', 'POST', '/tokenize', {}, 400, 'prompt', /required/],
  ['detokenize bad id', 'POST', '/detokenize', { tokens: [1, 100000] }, 400, 'tokens', /100000/],
  ['abort unknown request', 'POST', '/abort_request', { rid: 'nope' }, 404, 'rid', /nope/],
  ['unknown route', 'POST', '/v1/nothing', {}, 404, undefined, /No route/],
  ['unknown GET route', 'GET', '/v2/models', undefined, 404, undefined, /No route/],
  ['unknown model', 'GET', '/v1/models/other', undefined, 404, 'model', /other/],
  ['body over the limit', 'POST', '/v1/completions', comp({ prompt: 'x'.repeat(LIMIT * 2) }), 413, undefined, /limit/],
];

test('bad input: OpenAI-shaped errors with the right status', async () => {
  for (const [name, method, route, body, status, param, pattern] of CASES) {
    const payload = body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const res = await server.fetch(route, { method, headers: AUTH, body: payload });
    const text = await res.text();
    assert.equal(res.status, status, `${name}: status (${text})`);
    const json = JSON.parse(text);
    assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'type'], name);
    assert.equal(typeof json.error.message, 'string', name);
    assert.equal(typeof json.error.type, 'string', name);
    assert.equal(json.error.param, param ?? null, `${name}: param`);
    assert.match(json.error.message, pattern, `${name}: message`);
  }
});

test('bad key: 401 on every API route', async () => {
  for (const route of ['/v1/completions', '/v1/chat/completions', '/generate', '/tokenize']) {
    const res = await server.fetch(route, {
      method: 'POST', headers: { Authorization: 'Bearer nope', 'Content-Type': 'application/json' }, body: '{}',
    });
    assert.equal(res.status, 401, route);
    assert.equal((await res.json()).error.type, 'authentication_error');
  }
  assert.equal((await server.fetch('/v1/models')).status, 401);
});

test('healthy afterwards: a generation still works and nothing is left running', async () => {
  assert.equal((await server.fetch('/health_generate')).status, 200);
  const r = await server.postJson('/v1/completions', comp({ max_tokens: 4, ignore_eos: true }), AUTH);
  assert.equal(r.status, 200);
  assert.equal(r.json.usage.completion_tokens, 4);
  const info = await (await server.fetch('/get_server_info', { headers: AUTH })).json();
  const s = info.internal_states[0];
  assert.equal(s.running + s.waiting, 0);
  assert.equal(s.kv_pages_free, s.kv_pages_total);
});
