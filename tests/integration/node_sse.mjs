// The browser client (clients/js/myxid.js) in Node behind a proxy that
// refuses every WebSocket upgrade but passes plain HTTP on, as corporate
// proxies do: the client falls back to the daemon's SSE endpoint by itself
// and the page's API works the same. A late joiner gets its history; a
// second subscription (the stream is reopened) loses and repeats no line of
// the first; a denied key fires SubscriptionRefused; the stream cut by the
// proxy resumes with every line exactly once; a refused token fires
// AuthenticationFailed and stops reconnecting; unsubscribe() ends a key; the
// keepalive is answered while the server's comments arrive.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  PUBLISH_KEY, SRCDIR, breakingProxy, check, eq, freePort, loadModule, prerequisiteMissing, run, sleep,
  startDaemon, stopDaemon, tempDir, waitFor, writeConfig, MYXID_BIN,
} from './myxidtest.mjs';

const WebSocket = loadModule('ws');
if (!WebSocket) prerequisiteMissing('Node package ws (npm ci in tests/integration)');
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);
if (typeof fetch !== 'function') prerequisiteMissing('fetch() (Node 18 or later)');
const { Myxi } = await import(pathToFileURL(path.join(SRCDIR, 'clients/js/myxid.js')).href);

async function line(port, key, n) {
  const resp = await fetch(`http://127.0.0.1:${port}/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${PUBLISH_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ exchange: 'deployment', routing_key: key, event: 'Line', payload: { n } }),
  });
  if (resp.status !== 200) throw new Error(`publish ${key} ${n}: ${resp.status}`);
}

async function publishSteadily(port, key, from, to, rate) {
  const t0 = Date.now();
  for (let n = from; n <= to; n++) {
    await line(port, key, n);
    const wait = t0 + ((n - from + 1) * 1000) / rate - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

const inOrder = (got, from, to) => got.length === to - from + 1 && got.every((n, i) => n === from + i);
const firstWrong = (got, from) => got.findIndex((n, i) => n !== from + i);

async function main() {
  const dir = tempDir('myxidtest-jssse-');
  const port = await freePort();
  const conf = writeConfig(dir, port, ['sse_keepalive 1s'],
    { exchangeExtra: ['    history {', '        events 1000', '    }'] });
  const d = await startDaemon(dir, port, conf);
  const proxyPort = await freePort();
  const proxy = breakingProxy(port);
  await proxy.listen(proxyPort);
  const url = `ws://127.0.0.1:${proxyPort}/`;
  const opts = { WebSocket, minDelay: 50, maxDelay: 200, keepalive: 300, keepaliveTimeout: 2500 };

  for (let n = 1; n <= 5; n++) await line(port, 'd1', n);
  const conn = Myxi.Connection(url, opts);
  const seen = { auth: 0, closes: [] };
  conn.on('SocketAuthenticated', () => { seen.auth += 1; });
  conn.on('SocketClosed', (info) => seen.closes.push(info));
  conn.authenticate('demo-alice');
  const d1 = conn.subscribe('deployment', 'd1', { history: 3 });
  const got1 = [];
  d1.on('Line', (p) => got1.push(p.n));
  await waitFor(() => got1.length >= 3, 8000);
  eq(conn.transport, 'sse', 'the WebSocket upgrade was refused: the connection went over SSE');
  eq(got1, [3, 4, 5], 'over SSE, subscribe(..., {history: 3}) gets the last 3 lines first');
  check(conn.authenticated && d1.subscribed && conn.userId === '1',
    'authenticated and subscribed as over WebSocket', `${conn.authenticated} ${d1.subscribed} ${conn.userId}`);

  // A second key while lines flow on the first: the stream is reopened
  // with d1 resumed where it was.
  const publishing = publishSteadily(port, 'd1', 6, 60, 50);
  await waitFor(() => got1.includes(15), 5000);
  const d2 = conn.subscribe('deployment', 'd2');
  const got2 = [];
  d2.on('Line', (p) => got2.push(p.n));
  await d2.whenSubscribed();
  await line(port, 'd2', 1);
  await waitFor(() => got2.length === 1, 5000);
  eq(got2, [1], 'a second subscription over SSE gets its lines');

  // A key alice may not read.
  const d3 = conn.subscribe('deployment', 'd3');
  const refused = await new Promise((resolve) => {
    d3.on('SubscriptionRefused', (p) => resolve(p));
    setTimeout(() => resolve(null), 5000);
  });
  check(refused && refused.error === 'SubscriptionDenied', 'a denied key fires SubscriptionRefused (SubscriptionDenied)',
    JSON.stringify(refused));
  check(conn.subscriptions['deployment::d3'] === undefined, 'the denied subscription is dropped');

  // The proxy drops the stream mid-flow: the client reconnects and resumes.
  await waitFor(() => got1.includes(35), 5000);
  proxy.cut();
  await publishing;
  await waitFor(() => got1.includes(60), 10000);
  await sleep(300);
  check(inOrder(got1, 3, 60), 'd1 over two stream reopenings and a cut: 3..60 exactly once, in order',
    `${got1.length} lines, first wrong at ${firstWrong(got1, 3)}`);
  check(d1.recovered === true, 'after the cut d1 resumed: recovered', d1.recovered);
  check(seen.closes.length >= 2 && conn.transport === 'sse', 'the cut closed the stream; the client stayed on SSE',
    JSON.stringify(seen.closes.map((c) => c.code)));

  // unsubscribe(): SubscriptionEnded, and no more lines of d2.
  const ended = new Promise((resolve) => d2.on('SubscriptionEnded', resolve));
  check(d2.unsubscribe() === true, 'unsubscribe() over SSE returns true');
  await ended;
  check(conn.subscriptions['deployment::d2'] === undefined, 'the subscription leaves conn.subscriptions');
  await line(port, 'd2', 2);
  await line(port, 'd1', 61);
  await waitFor(() => got1.includes(61), 5000);
  await sleep(200);
  eq(got2, [1], 'no line of an unsubscribed key arrives');

  // Keepalive: Pings are answered while the server's comments arrive.
  const closesBefore = seen.closes.length;
  await sleep(3500);
  eq(seen.closes.length, closesBefore, 'with sse_keepalive 1s the client keepalive (300 ms) never times out');
  conn.disconnect();
  await waitFor(() => seen.closes.length > closesBefore, 3000);

  // A refused token: AuthenticationFailed, and no reconnecting.
  const bad = Myxi.Connection(url, opts);
  const failed = new Promise((resolve) => bad.on('AuthenticationFailed', resolve));
  bad.authenticate('not-a-token');
  const why = await Promise.race([failed, sleep(8000).then(() => null)]);
  check(why && why.error === 'InvalidAuthentication', 'a refused token over SSE fires AuthenticationFailed',
    JSON.stringify(why));
  check(bad.transport === 'sse' && !bad.authenticated, 'the refused connection is on SSE and not authenticated');
  bad.disconnect();

  // transport: 'sse' straight to the daemon, no fallback needed.
  const direct = Myxi.Connection(`ws://127.0.0.1:${port}/`, { ...opts, transport: 'sse' });
  direct.authenticate('demo-bob');
  const d3b = direct.subscribe('deployment', 'd3');
  const got3 = [];
  d3b.on('Line', (p) => got3.push(p.n));
  await d3b.whenSubscribed();
  await line(port, 'd3', 7);
  await waitFor(() => got3.length === 1, 5000);
  eq(got3, [7], "transport: 'sse' from the start works without a proxy");
  direct.disconnect();

  proxy.close();
  await stopDaemon(d);
}

run(main, 90000);
