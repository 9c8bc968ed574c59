// myxid driven by Node's `ws` client (a second, independent WebSocket
// implementation): Welcome, Authenticate, Subscribe, a denied Subscribe,
// publish over HTTP with fetch() and receive the exact event, a WebSocket
// ping answered with the same data, the close handshake, and SIGTERM.
//
// Starts its own daemon on a free loopback port with a config in a temp
// directory (myxidtest.mjs, like the Python harness's myxidtest.py). Exit
// status: 0 all passed, 1 a failure, 77 a prerequisite missing (a failure
// under CI).
// `ws` is found next to this file (npm ci in tests/integration) or in
// $MYXID_NODE_MODULES (for distcheck trees).

import {
  check, eq, freePort, loadModule, MYXID_BIN, prerequisiteMissing, PUBLISH_KEY, run, sleep,
  startDaemon, tempDir, writeConfig,
} from './myxidtest.mjs';
import fs from 'node:fs';

const WebSocket = loadModule('ws');
if (!WebSocket) prerequisiteMissing("Node package ws (npm ci in tests/integration)");
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);
if (typeof fetch !== 'function') prerequisiteMissing('fetch() (Node 18 or later)');

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
  const dir = tempDir('myxidtest-node-');
  const port = await freePort();
  writeConfig(dir, port, [], { drainTime: null });
  const d = await startDaemon(dir, port);
  const daemon = d.child;

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
}

run(main, 30000);
