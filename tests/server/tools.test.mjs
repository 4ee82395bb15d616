// Tool use through the official OpenAI client with Qwen3's chat template: a
// conversation carrying an assistant tool call and its result renders as
// transformers renders it and completes, whole and streamed. stories260K
// cannot be made to call a tool, so the client reads its tool calls from
// server_chat_reply (the route's response code fed a fixed Qwen3 output) and
// sends them back to the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Server, BINARY, MODEL, openaiModule, lenmlChatTemplate, modelWithContext, renderReference } from './harness.mjs';

const { OpenAI } = openaiModule();
const qwen3 = lenmlChatTemplate('qwen3');
// Qwen3's tool preamble alone is ~450 of stories260K's tokens; its RoPE runs past the 512 it was trained on.
const server = new Server(['--chat-template', qwen3.path, '--served-model-name', 'stories'], modelWithContext(1024));
let client;

before(async () => {
  await server.start();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { assert.equal((await server.stop()).code, 0); });

// Key order matters: transformers keeps it in `tools | tojson`.
const tools = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
}];
const messages = [
  { role: 'user', content: 'Weather in Paris?' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 20}' },
];
// What the template should see, as SGLang hands it over: null content as "",
// arguments as an object.
const templateMessages = [
  messages[0],
  { ...messages[1], content: '', tool_calls: [{ ...messages[1].tool_calls[0], function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
  messages[2],
];
const params = { model: 'stories', messages, tools, temperature: 0, max_tokens: 12 };

// Greedy /v1/completions on the reference prompt's tokens: what the chat reply must be.
async function expectedReply(context) {
  const prompt = renderReference(qwen3.source, { add_generation_prompt: true, ...context });
  const ids = (await server.postJson('/tokenize', { prompt, add_special_tokens: false })).json.tokens;
  const r = await client.completions.create({
    model: 'stories', prompt: ids, temperature: 0, max_tokens: params.max_tokens, logprobs: 0,
  });
  const c = r.choices[0];
  return { ids, text: c.text, finish: c.finish_reason, logprobs: c.logprobs.token_logprobs };
}

// Same prompt tokens, not just as many: the logprobs of the greedy tokens
// depend on every one of them (a greedy text can survive a reordered prompt).
function assertSamePrompt(chat, expected) {
  assert.equal(chat.usage.prompt_tokens, expected.ids.length);
  const got = chat.choices[0].logprobs.content.map((t) => t.logprob);
  assert.equal(got.length, expected.logprobs.length);
  for (const [i, v] of got.entries()) assert.ok(Math.abs(v - expected.logprobs[i]) < 1e-4, `token ${i}: ${v} vs ${expected.logprobs[i]}`);
}

test('tools: a tool call and its result render as transformers renders them', async () => {
  const expected = await expectedReply({ messages: templateMessages, tools });
  const r = await client.chat.completions.create({ ...params, logprobs: true });
  const choice = r.choices[0];
  assertSamePrompt(r, expected);
  assert.equal(choice.message.role, 'assistant');
  assert.equal(choice.message.content, expected.text, 'no tags in the reply, so the parsers pass it through');
  assert.equal(choice.message.tool_calls, undefined);
  assert.equal(choice.finish_reason, expected.finish);
});

test('tools: streamed reply agrees with the whole one', async () => {
  const whole = await client.chat.completions.create(params);
  const stream = await client.chat.completions.create({ ...params, stream: true });
  let content = '';
  let finish = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    assert.equal(c.delta.tool_calls, undefined);
    content += c.delta.content ?? '';
    finish = c.finish_reason ?? finish;
  }
  assert.equal(content, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  // The client's own accumulation of a stream gives the same message.
  const runner = client.chat.completions.stream(params);
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, whole.choices[0].message.content);
});

test('tools: tool_choice none leaves the tools out; enable_thinking reaches the template', async () => {
  const none = await client.chat.completions.create({ ...params, tool_choice: 'none', logprobs: true });
  const noTools = await expectedReply({ messages: templateMessages });
  assertSamePrompt(none, noTools);
  assert.equal(none.choices[0].message.content, noTools.text);

  const kwargs = { enable_thinking: false };
  const off = await client.chat.completions.create({ ...params, chat_template_kwargs: kwargs, logprobs: true });
  const offExpected = await expectedReply({ messages: templateMessages, tools, ...kwargs });
  assertSamePrompt(off, offExpected);
  assert.equal(off.choices[0].message.content, offExpected.text);
});

test('tools: bad tool_choice and tool_calls are 400s naming the field', async () => {
  const cases = [
    [{ tool_choice: 'always' }, 'tool_choice'],
    [{ tool_choice: { type: 'function', function: { name: 'get_time' } } }, 'tool_choice'],
    [{ tools: undefined, tool_choice: 'required' }, 'tool_choice'],
    [{ messages: [{ role: 'assistant', content: null, tool_calls: { id: 'x' } }] }, 'messages[0].tool_calls'],
  ];
  for (const [change, param] of cases) {
    const r = await server.postJson('/v1/chat/completions', { ...params, ...change });
    assert.equal(r.status, 400, JSON.stringify(change));
    assert.equal(r.json.error.param, param);
  }
});

test('tools: parser flags are reported and checked', async () => {
  const args = await (await server.fetch('/get_server_info')).json();
  assert.equal(args.reasoning_parser, 'auto');
  assert.equal(args.tool_call_parser, 'auto');
  const bad = spawnSync(BINARY, ['serve', '--model-path', MODEL, '--tool-call-parser', 'bogus'], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr + bad.stdout, /tool-call-parser/);
});

// An OpenAI client whose requests are answered by server_chat_reply for `output`.
function fixtureClient(output) {
  const fetch = async (url, init) => {
    const stream = JSON.parse(init.body).stream === true;
    const r = spawnSync(process.env.NATIVELM_CHAT_REPLY, [stream ? 'stream' : 'whole'], { input: output, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`server_chat_reply failed: ${r.stderr}`);
    return new Response(r.stdout, { headers: { 'content-type': stream ? 'text/event-stream' : 'application/json' } });
  };
  return new OpenAI({ baseURL: 'http://fixture.invalid/v1', apiKey: 'unused', maxRetries: 0, fetch });
}

const QWEN3_CALL = '<think>\nParis weather is a tool question.\n</think>\n\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';

test('tools: the client reads tool calls whole and streamed, and the round trip completes', async () => {
  assert.ok(process.env.NATIVELM_CHAT_REPLY, 'set NATIVELM_CHAT_REPLY to the server_chat_reply binary (ctest does)');
  const fixture = fixtureClient(QWEN3_CALL);
  const request = { model: 'stories', messages: [messages[0]], tools };
  const whole = await fixture.chat.completions.create(request);
  const message = whole.choices[0].message;
  assert.equal(whole.choices[0].finish_reason, 'tool_calls');
  assert.equal(message.content, null);
  assert.equal(message.reasoning_content, 'Paris weather is a tool question.');
  assert.equal(message.tool_calls.length, 1);
  assert.match(message.tool_calls[0].id, /^call_[A-Za-z0-9]{24}$/);
  assert.equal(message.tool_calls[0].type, 'function');
  assert.equal(message.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: 'Paris' });

  // The client's stream helper assembles the same call from the deltas and announces it.
  const runner = fixture.chat.completions.stream(request);
  const announced = [];
  runner.on('tool_calls.function.arguments.done', (e) => announced.push([e.name, e.parsed_arguments ?? JSON.parse(e.arguments)]));
  const final = await runner.finalChatCompletion();
  const streamed = final.choices[0].message;
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.deepEqual(announced, [['get_weather', { city: 'Paris' }]]);
  assert.equal(streamed.tool_calls.length, 1);
  assert.equal(streamed.tool_calls[0].function.name, 'get_weather');
  assert.equal(streamed.tool_calls[0].function.arguments, message.tool_calls[0].function.arguments);
  assert.ok(!streamed.content, 'no text beside the call');

  // Back to the real server: the call as the client returned it, and its result.
  const followUp = [messages[0], message, { role: 'tool', tool_call_id: message.tool_calls[0].id, content: '{"temp": 20}' }];
  const r = await client.chat.completions.create({ ...params, messages: followUp, logprobs: true });
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  // Qwen3 renders the reasoning of an assistant turn after the last user message.
  const asTemplateSeesIt = {
    ...message,
    content: '',
    tool_calls: message.tool_calls.map((c) => ({ ...c, function: { ...c.function, arguments: JSON.parse(c.function.arguments) } })),
  };
  assertSamePrompt(r, await expectedReply({ messages: [messages[0], asTemplateSeesIt, followUp[2]], tools }));
});
