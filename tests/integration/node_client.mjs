// myxid driven by Node's `ws` client (a second, independent WebSocket
// implementation): Welcome, Authenticate, Subscribe, a denied Subscribe,
// publish over HTTP with fetch() and receive the exact event, a WebSocket
// ping answered with the same data, the close handshake, and SIGTERM.
//
// Starts its own daemon on a free loopback port with a config in a temp
// directory, like the Python harness (myxidtest.py). Exit status: 0 all
// passed, 1 a failure, 77 a prerequisite missing (a failure under CI).
// `ws` is found next to this file (npm ci in tests/integration) or in
// $MYXID_NODE_MODULES (for distcheck trees).

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TOP = path.resolve(HERE, '..', '..');
const env = (name, fallback) => process.env[name] || path.join(TOP, fallback);
const MYXID_BIN = env('MYXID_BIN', 'server/myxid');
const PLUGIN_DIR = env('MYXID_PLUGIN_DIR', 'plugins/.libs');
const PUBLISH_KEY = 'demo-publish-key';

let passed = 0;
let failed = 0;
let daemon = null;
let logPath = null;

function prerequisiteMissing(what) {
  if (process.env.CI) {
    console.log(`FAIL: prerequisite missing under CI: ${what}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  console.log(`SKIP: prerequisite missing: ${what}`);
  process.exit(77);
}

function check(cond, what, detail) {
  if (cond) {
    passed++;
    console.log(`PASS: ${what}`);
  } else {
    failed++;
    console.log(`FAIL: ${what}`);
    if (detail !== undefined) console.log(`    ${String(detail).split('\n').join('\n    ')}`);
  }
  return cond;
}

function eq(got, want, what) {
  return check(got === want, what, `got:  ${JSON.stringify(got)}\nwant: ${JSON.stringify(want)}`);
}

function loadWs() {
  const require = createRequire(import.meta.url);
  const candidates = ['ws'];
  if (process.env.MYXID_NODE_MODULES) candidates.push(path.join(process.env.MYXID_NODE_MODULES, 'ws'));
  for (const c of candidates) {
    try {
      return require(c);
    } catch (e) {
      // try the next one
    }
  }
  return null;
}

const WebSocket = loadWs();
if (!WebSocket) prerequisiteMissing("Node package ws (npm ci in tests/integration)");
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);
if (typeof fetch !== 'function') prerequisiteMissing('fetch() (Node 18 or later)');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

function dumpLog() {
  if (!logPath) return;
  const text = fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8') : '';
  console.log(`# ---- stderr of myxid (${logPath})`);
  for (const line of text.split('\n').slice(-100)) console.log(`# ${line}`);
  console.log('# ----');
}

async function startDaemon() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'myxidtest-node-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'tokens'),
    'demo-alice 1 deployments=d1,d2\ndemo-bob 2 deployments=d3\n');
  fs.writeFileSync(path.join(dir, 'myxid.conf'), [
    `listen 127.0.0.1:${port}`,
    `publish_key ${PUBLISH_KEY}`,
    'auth static {', '    tokens_file tokens', '}',
    'exchange deployment {', '    policy static {', '        allow attribute deployments',
    '    }', '}', '',
  ].join('\n'));
  logPath = path.join(dir, 'stderr.log');
  const log = fs.openSync(logPath, 'a');
  const childEnv = { ...process.env };
  delete childEnv.MYXI_PORT; delete childEnv.PORT; delete childEnv.MYXI_BIND_ADDRESS;
  const child = spawn(MYXID_BIN, ['-c', path.join(dir, 'myxid.conf'), '-P', PLUGIN_DIR],
    { cwd: dir, stdio: ['ignore', log, log], env: childEnv });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await portOpen(port)) return { child, port, dir, exited };
    await sleep(20);
  }
  dumpLog();
  throw new Error('myxid did not start');
}

// A ws connection with a queue of received text messages.
function connect(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { handshakeTimeout: 5000 });
    const queue = [];
    const waiters = [];
    ws.closeInfo = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? `<binary ${data.length} bytes>` : data.toString('utf8');
      if (waiters.length) waiters.shift()(text); else queue.push(text);
    });
    ws.next = (ms = 3000) => (queue.length ? Promise.resolve(queue.shift())
      : new Promise((res) => {
        const w = (t) => { clearTimeout(timer); res(t); };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          res(`<nothing within ${ms} ms>`);
        }, ms);
        waiters.push(w);
      }));
    ws.action = (action, payload, tag) => ws.send(JSON.stringify({ action, tag, payload }));
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

const compact = (o) => JSON.stringify(o);

async function main() {
  const d = await startDaemon();
  daemon = d.child;
  const { port } = d;

  const bob = await connect(port);
  const welcome = await bob.next();
  check(/^\{"event":"Welcome","payload":\{"id":"[0-9a-f]{16}"\}\}$/.test(welcome),
    'Welcome with a 16-hex id', welcome);

  bob.action('Authenticate', { session_id: 'demo-bob' }, 'a1');
  eq(await bob.next(), compact({ event: 'Authenticated', tag: 'a1', payload: { user_id: '2' } }),
    'Authenticate demo-bob -> Authenticated user 2');

  bob.action('Subscribe', { exchange: 'deployment', routing_key: 'd3' }, 's1');
  eq(await bob.next(), compact({ event: 'Subscribed', tag: 's1',
    payload: { exchange: 'deployment', routing_key: 'd3' } }), 'Subscribe d3 -> Subscribed');

  bob.action('Subscribe', { exchange: 'deployment', routing_key: 'd1' }, 's2');
  eq(await bob.next(), compact({ event: 'Error', tag: 's2',
    payload: { error: 'SubscriptionDenied', exchange: 'deployment', routing_key: 'd1' } }),
  'Subscribe d1 -> SubscriptionDenied');

  const anon = await connect(port);
  await anon.next();
  anon.action('Subscribe', { exchange: 'deployment', routing_key: 'd3' }, 7);
  eq(await anon.next(), compact({ event: 'Error', tag: 7,
    payload: { error: 'AuthRequired', exchange: 'deployment', routing_key: 'd3' } }),
  'anonymous Subscribe d3 -> AuthRequired');

  const payload = { status: 'deployed', at: 1700000000, who: 'bob', path: '/srv/app', ok: true };
  const resp = await fetch(`http://127.0.0.1:${port}/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${PUBLISH_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ exchange: 'deployment', routing_key: 'd3', event: 'StatusChanged', payload }),
  });
  const body = await resp.text();
  check(resp.status === 200 && body.trim() === '{"ok":true,"delivered":1}',
    'fetch POST /publish -> 200 delivered 1', `${resp.status} ${body}`);
  eq(await bob.next(), compact({ event: 'StatusChanged', payload, mq: { e: 'deployment', rk: 'd3' } }),
    'bob receives exactly the published event');
  eq(await anon.next(300), '<nothing within 300 ms>', 'the anonymous client receives nothing');

  const bad = await fetch(`http://127.0.0.1:${port}/publish`, {
    method: 'POST',
    headers: { Authorization: 'Bearer nope', 'Content-Type': 'application/json' },
    body: JSON.stringify({ exchange: 'deployment', routing_key: 'd3', event: 'X', payload: {} }),
  });
  const badBody = await bad.json().catch(() => null);
  check(bad.status === 401 && badBody && typeof badBody.error === 'string',
    'fetch POST /publish with a wrong key -> 401 JSON error', `${bad.status} ${JSON.stringify(badBody)}`);

  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  const hb = await health.json().catch(() => null);
  check(health.status === 200 && hb && hb.status === 'ok', 'GET /healthz -> status ok', JSON.stringify(hb));

  // A WebSocket ping: the pong carries the same data.
  for (const data of [Buffer.from('node-ping-123'), Buffer.alloc(0), Buffer.alloc(125, 0xab)]) {
    const pong = new Promise((res) => {
      const t = setTimeout(() => res(null), 3000);
      bob.once('pong', (d2) => { clearTimeout(t); res(d2); });
    });
    bob.ping(data);
    const got = await pong;
    check(got !== null && Buffer.compare(got, data) === 0,
      `ws.ping() with ${data.length} bytes -> pong with the same data`, got && got.toString('hex'));
  }

  bob.action('Ping', undefined, 'p');
  const pongText = await bob.next();
  const m = /^\{"event":"Pong","tag":"p","payload":\{"time":(\d+)\}\}$/.exec(pongText);
  check(m && Math.abs(Number(m[1]) - Date.now() / 1000) <= 5, 'Ping action -> Pong with the time', pongText);

  // The close handshake: our 1000 is echoed.
  anon.close(1000, 'bye');
  const ci = await Promise.race([anon.closeInfo, sleep(3000).then(() => null)]);
  check(ci && ci.code === 1000, 'close(1000) -> the server echoes 1000', JSON.stringify(ci));

  // SIGTERM: bob gets 1001, the daemon exits 0.
  daemon.kill('SIGTERM');
  const bi = await Promise.race([bob.closeInfo, sleep(5000).then(() => null)]);
  check(bi && bi.code === 1001, 'SIGTERM -> connected client gets close 1001', JSON.stringify(bi));
  const ex = await Promise.race([d.exited, sleep(8000).then(() => null)]);
  check(ex && ex.code === 0, 'the daemon exits 0 after SIGTERM', JSON.stringify(ex));
  if (!ex) daemon.kill('SIGKILL');
  daemon = null;
  if (failed === 0) fs.rmSync(d.dir, { recursive: true, force: true });
}

const hardTimeout = setTimeout(() => {
  check(false, 'finished within 30 s', 'the test hung');
  finish(1);
}, 30000);

function finish(code) {
  clearTimeout(hardTimeout);
  if (daemon) daemon.kill('SIGKILL');
  if (failed) dumpLog();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(code || (failed ? 1 : 0));
}

main().then(() => finish(0), (e) => {
  check(false, 'no exception', e && e.stack);
  finish(1);
});
