// Myxi compatibility of the browser client: one page-like script runs twice
// against the real daemon, once with Myxi's own client (its CoffeeScript,
// unmodified in ../shared/reference/myxi-client, compiled here with npm
// coffeescript) and once with myxid's (the classic build, included the way a
// Myxi page included Myxi's). Each run records what a page can observe:
// return values, `this`, arguments, the order callbacks fire in and the
// connection's state while they do, subscriptions kept or dropped, what
// happens while disconnected. The two records must be identical.
//
// Not compared, because myxid changes them on purpose (clients/js/README.md
// lists them): how long a reconnect waits (Myxi: 5 s flat), the extra
// argument of SocketClosed/SocketDisconnected, and the failed attempts'
// SocketClosed while the server is down (their number depends on timing).

import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import {
  MYXID_BIN, SRCDIR, check, eq, freePort, loadModule, prerequisiteMissing, publish, run, sleep,
  startDaemon, stopDaemon, tempDir, waitFor, writeConfig,
} from './myxidtest.mjs';

const WebSocket = loadModule('ws');
const coffee = loadModule('coffeescript');
const MYXI_DIR = process.env.MYXI_CLIENT_DIR ||
  path.resolve(SRCDIR, '..', 'shared', 'reference', 'myxi-client');
const CLASSIC = path.join(path.dirname(MYXID_BIN), '..', 'clients', 'js', 'myxid.classic.js');
if (!WebSocket) prerequisiteMissing('Node package ws (npm ci in tests/integration)');
if (!coffee) prerequisiteMissing('Node package coffeescript (npm ci in tests/integration)');
if (!fs.existsSync(path.join(MYXI_DIR, 'connection.coffee'))) {
  prerequisiteMissing(`Myxi's client in ${MYXI_DIR} (set MYXI_CLIENT_DIR)`);
}
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);

// A page's global scope: window is the global object, WebSocket is `ws`
// (what a browser would give), console is quiet (Myxi logs to it).
function pageScope(source) {
  const scope = {
    WebSocket, setTimeout, clearTimeout, URL,
    console: { log() {}, debug() {}, error() {} },
  };
  scope.window = scope;
  vm.createContext(scope);
  vm.runInContext(source, scope);
  return scope.Myxi;
}

function myxiClient() {
  const src = ['connection.coffee', 'subscription.coffee']
    .map((f) => fs.readFileSync(path.join(MYXI_DIR, f), 'utf8')).join('\n');
  return pageScope(coffee.compile(src));
}

function myxidClient() {
  return pageScope(fs.readFileSync(CLASSIC, 'utf8'));
}

// What a page sees of a message: volatile values (ids, clocks) replaced.
function normal(data) {
  const copy = JSON.parse(JSON.stringify(data === undefined ? null : data));
  if (copy && copy.event === 'Welcome' && copy.payload) copy.payload.id = typeof copy.payload.id;
  if (copy && copy.event === 'Pong' && copy.payload && 'time' in copy.payload) copy.payload.time = 'number';
  return copy;
}

// The page. Returns its record: a list of [what, ...observations].
async function page(Myxi, port, daemon) {
  const url = `ws://127.0.0.1:${port}/`;
  const rec = [];
  const note = (...what) => rec.push(JSON.parse(JSON.stringify(what, (k, v) => (v === undefined ? '<undefined>' : v))));
  const conn = new Myxi.Connection(url);
  const state = () => ({ connected: conn.connected, authenticated: conn.authenticated });
  note('constructed', state(), conn.reconnect, Object.keys(conn.subscriptions), conn.serverURL === url,
    conn.authentication_callback, conn.reconnectTimer);

  // Connection callbacks, and what `on` returns.
  const onConn = (event, fn) => note('conn.on returns', event, conn.on(event, fn));
  for (const ev of ['SocketConnected', 'SocketAuthenticated', 'SocketDisconnected']) {
    onConn(ev, function socketEvent() { note(ev, this === conn, state()); });
  }
  onConn('SocketClosed', function closed() {
    // The failed attempts while the server is down are not compared.
    if (this.connected) note('SocketClosed', this === conn, state());
  });
  onConn('SocketMessageReceived', function received(data) {
    note('SocketMessageReceived', this === conn, normal(data));
  });
  for (const ev of ['Welcome', 'Subscribed', 'Unsubscribed', 'Error', 'LogLine', 'StatusChanged', 'Pong']) {
    onConn(ev, function serverEvent(payload, tag, mq) {
      note(`conn ${ev}`, this === conn, normal({ event: ev, payload }).payload, tag, mq, state());
    });
  }
  let isAuthResult = null;
  onConn('Authenticated', function authenticated(payload, tag) {
    note('conn Authenticated', this === conn, payload, tag, state());
    isAuthResult = this.isAuthenticated();
    note('isAuthenticated() returned', isAuthResult, state());
  });
  note('second on() for the same event returns', conn.on('Authenticated', () => note('second Authenticated callback')));

  const authCb = function authenticate() {
    note('authentication callback', this === conn, state());
    note('sendAction(Authenticate) returned', this.sendAction('Authenticate', { session_id: 'demo-alice' }));
  };
  note('authentication() returns its callback', conn.authentication(authCb) === authCb);
  note('sendAction before the socket opens', conn.sendAction('Ping', {}, 'early'));

  // Subscriptions made before the socket opens.
  const d1 = conn.subscribe('deployment', 'd1');
  note('subscribe() twice: the same object', conn.subscribe('deployment', 'd1') === d1,
    d1.subscribed, d1.reconnect, d1.key(), d1.exchange, d1.routingKey, d1.connection === conn);
  note('keyFor', Myxi.Subscription.keyFor('x'), Myxi.Subscription.keyFor('x', 5),
    Myxi.Subscription.keyFor('x', null), Myxi.Subscription.keyFor('x', 0));
  note('sub.on returns', d1.on('LogLine', function subLine(payload, tag) {
    note('d1.on LogLine #1', this === d1, payload, tag, arguments.length);
  }), d1.on('LogLine', function subLine2(payload) { note('d1.on LogLine #2', payload); }));
  const p1 = { name: 'p1' };
  const p2 = { name: 'p2' };
  const h1 = function first() { note('handler log (replaced: never called)'); };
  const added = d1.addMessageHandler('logWindow', h1, p1);
  note('addMessageHandler returns {handler, param}', added && added.handler === h1, added && added.param === p1);
  d1.addMessageHandler('logWindow', function logWindow(sub, event, payload, tag) {
    note('handler logWindow', this === p2, sub === d1, event, payload, tag, arguments.length);
  }, p2);
  d1.addMessageHandler('status', function status(sub, event) { note('handler status', this, event); });
  d1.addMessageHandler('gone', () => note('handler gone (removed: never called)'), null);
  note('removeMessageHandler', d1.removeMessageHandler('gone'), d1.removeMessageHandler('gone'),
    d1.removeMessageHandler('never'), Object.keys(d1.messageHandlers));

  const subscribed = await waitFor(() => d1.subscribed, 8000);
  note('d1 subscribed', !!subscribed, Object.keys(conn.subscriptions), state(), isAuthResult);

  // Events of the subscription; one of another key.
  await publish(port, 'd1', 'LogLine', { line: 'one' });
  await publish(port, 'd1', 'StatusChanged', { status: 'deploying' });
  await publish(port, 'd2', 'LogLine', { line: 'not subscribed' });
  await waitFor(() => rec.some((r) => r[0] === 'handler status'), 5000);

  // Actions: tags as given, no tag, no payload.
  note('sendAction(Ping, {}, tag)', conn.sendAction('Ping', {}, 'tag-1'));
  note('sendAction(Ping) with no payload and no tag', conn.sendAction('Ping'));
  note('sendAction(Nope)', conn.sendAction('Nope', { a: 1 }, 7));
  await waitFor(() => rec.filter((r) => r[0] === 'conn Pong').length >= 2 &&
    rec.some((r) => r[0] === 'conn Error'), 5000);

  // A denied subscription (alice may not read d3) and an unknown exchange.
  const d3 = conn.subscribe('deployment', 'd3');
  await waitFor(() => !conn.subscriptions['deployment::d3'], 5000);
  note('denied d3', d3.subscribed, d3.reconnect, Object.keys(conn.subscriptions));
  const bad = conn.subscribe('nope', 'x');
  await waitFor(() => rec.some((r) => r[0] === 'conn Error' && r[2].error === 'InvalidExchange'), 5000);
  note('unknown exchange', bad.subscribed, bad.reconnect, Object.keys(conn.subscriptions));

  // unsubscribe(): kept until the server's Unsubscribed.
  const d2 = conn.subscribe('deployment', 'd2');
  await waitFor(() => d2.subscribed, 5000);
  note('unsubscribe() returned', d2.unsubscribe(), d2.subscribed, d2.reconnect,
    Object.keys(conn.subscriptions));
  await waitFor(() => !conn.subscriptions['deployment::d2'], 5000);
  note('after Unsubscribed', Object.keys(conn.subscriptions),
    (await publish(port, 'd2', 'LogLine', { line: 'after unsubscribe' })).body);

  // The server restarts: the page reconnects, authenticates, re-subscribes.
  await stopDaemon(daemon.d);
  await waitFor(() => !conn.connected, 5000);
  note('after the server went away', state(), d1.subscribed, Object.keys(conn.subscriptions));
  daemon.d = await startDaemon(daemon.dir, port);
  await waitFor(() => d1.subscribed, 15000);
  note('re-subscribed', d1.subscribed, state(), isAuthResult);
  await publish(port, 'd1', 'LogLine', { line: 'two' });
  await waitFor(() => rec.some((r) => r[0] === 'handler logWindow' && r[5].line === 'two'), 5000);

  // disconnect(): the close completes later; nothing reconnects.
  note('disconnect() returned', conn.disconnect(), 'right after', state(), conn.reconnect);
  await waitFor(() => !conn.connected, 5000);
  note('disconnected', state(), d1.subscribed, conn.sendAction('Ping', {}, 'late'), d1.unsubscribe());
  await sleep(6000);   // longer than Myxi's 5 s reconnect
  note('still disconnected', state());
  return rec;
}

async function main() {
  const dir = tempDir('myxidtest-compat-');
  const port = await freePort();
  writeConfig(dir, port);
  const daemon = { dir, d: await startDaemon(dir, port) };

  const original = await page(myxiClient(), port, daemon);
  const ours = await page(myxidClient(), port, daemon);

  // The record is meaningful: Myxi's own client saw what a page relies on.
  const has = (rec, pred) => rec.some(pred);
  check(has(original, (r) => r[0] === 'handler logWindow' && r[3] === 'LogLine' && r[4].line === 'one') &&
    has(original, (r) => r[0] === 'handler logWindow' && r[3] === 'StatusChanged'),
  'Myxi: a named message handler gets every message of its subscription');
  check(has(original, (r) => r[0] === 're-subscribed' && r[1] === true),
    'Myxi: re-subscribed after the server restarted');
  check(original.length > 60, 'the record is not trivially short', original.length);

  // Compare entry by entry, so a difference names its step.
  const n = Math.max(original.length, ours.length);
  let same = 0;
  for (let i = 0; i < n; i++) {
    const a = JSON.stringify(original[i]);
    const b = JSON.stringify(ours[i]);
    if (a === b) same++;
    else {
      eq(ours[i], original[i], `observation ${i + 1} (${(original[i] || ours[i])[0]}) as with Myxi's client`);
      break;   // everything after a divergence would differ too
    }
  }
  check(same === n && original.length === ours.length,
    `all ${original.length} observations identical with Myxi's client and myxid's`, `${same} of ${n}`);
  for (const r of original) console.log(`#   ${JSON.stringify(r)}`);

  await stopDaemon(daemon.d);
}

run(main, 120000);
