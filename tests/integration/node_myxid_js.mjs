// The browser client (clients/js/myxid.js) in Node, with `ws` as its
// WebSocket, against the real daemon: authenticate and subscribe, receive
// published events through every kind of handler, tag-matched request()
// promises, denials (subscription and token), a daemon restart on the same
// port (reconnect, re-authenticate, re-subscribe by itself), the keepalive
// noticing a frozen daemon (SIGSTOP), and the close-code policy (4008 backs
// off longer; a refused token is not retried).

import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  SRCDIR, check, eq, freePort, loadModule, prerequisiteMissing, publish, run, sleep,
  startDaemon, stopDaemon, tempDir, waitFor, writeConfig, MYXID_BIN,
} from './myxidtest.mjs';
import fs from 'node:fs';

const WebSocket = loadModule('ws');
if (!WebSocket) prerequisiteMissing('Node package ws (npm ci in tests/integration)');
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);
const lib = await import(pathToFileURL(path.join(SRCDIR, 'clients/js/myxid.js')).href);
const { Myxi } = lib;

const FAST = { WebSocket, minDelay: 100, maxDelay: 400, keepalive: 0 };

// Record every connection event, to assert on later.
function recorder(conn) {
  const seen = [];
  for (const ev of ['SocketConnected', 'SocketDisconnected', 'SocketClosed', 'SocketAuthenticated',
    'AuthenticationFailed', 'SocketReconnecting']) {
    conn.on(ev, (info) => seen.push({ ev, info }));
  }
  seen.count = (ev) => seen.filter((s) => s.ev === ev).length;
  seen.last = (ev) => [...seen].reverse().find((s) => s.ev === ev);
  return seen;
}

async function main() {
  const dir = tempDir('myxidtest-js-');
  const port = await freePort();
  writeConfig(dir, port);
  let d = await startDaemon(dir, port);
  const url = `ws://127.0.0.1:${port}/`;

  // --- Myxi's API: Connection(url) without new, authentication callback,
  //     the app's own Authenticated handler calling isAuthenticated().
  const alice = Myxi.Connection(url, FAST);
  const aliceSeen = recorder(alice);
  alice.authentication(function authenticate() {
    this.sendAction('Authenticate', { session_id: 'demo-alice' }, 'auth');
  });
  alice.on('Authenticated', function onAuth() { this.isAuthenticated(); });
  const aliceD1 = alice.subscribe('deployment', 'd1');
  const confirmed = [];
  aliceD1.on('SubscriptionConfirmed', function onConfirmed(p) { confirmed.push({ self: this === aliceD1, p }); });
  check(alice.subscribe('deployment', 'd1') === aliceD1, 'subscribe() twice returns the same Subscription');
  const viaOn = [];
  const viaHandler = [];
  const viaGlobal = [];
  aliceD1.on('LogLine', function onLine(payload, tag) { viaOn.push({ self: this, payload, tag }); });
  const param = { name: 'param' };
  aliceD1.addMessageHandler('LogLine', function handler(sub, event, payload, tag) {
    viaHandler.push({ self: this, sub, event, payload, tag });
  }, param);
  alice.on('LogLine', (payload, tag, mq) => viaGlobal.push({ payload, mq }));
  const statuses = [];
  alice.on('StatusChanged', (payload, tag, mq) => statuses.push({ payload, mq }));
  const messages = [];
  alice.on('SocketMessageReceived', (data) => messages.push(data));

  const sub1 = await Promise.race([aliceD1.whenSubscribed(), sleep(5000).then(() => null)]);
  check(sub1 === aliceD1 && aliceD1.subscribed, 'authentication callback + isAuthenticated -> Subscribed d1');
  eq([aliceSeen.count('SocketConnected'), aliceSeen.count('SocketAuthenticated')], [1, 1],
    'SocketConnected and SocketAuthenticated fired once each');
  check(alice.isAuthenticated && alice.authenticated && alice.sessionId && /^[0-9a-f]{16}$/.test(alice.sessionId),
    'connection knows its Welcome id and that it is authenticated', alice.sessionId);

  const r1 = await publish(port, 'd1', 'LogLine', { line: 'Deploying...' });
  eq(r1, { status: 200, body: { ok: true, delivered: 1 } }, 'POST /publish d1 -> delivered 1');
  await waitFor(() => viaOn.length && viaHandler.length && viaGlobal.length, 3000);
  check(viaOn.length === 1 && viaOn[0].self === aliceD1 && viaOn[0].payload.line === 'Deploying...',
    'subscription.on(event) gets (payload, tag) with this = the subscription', JSON.stringify(viaOn[0]?.payload));
  check(viaHandler.length === 1 && viaHandler[0].self === param && viaHandler[0].sub === aliceD1 &&
    viaHandler[0].event === 'LogLine' && viaHandler[0].payload.line === 'Deploying...',
  'addMessageHandler(name, fn, param) -> fn.call(param, sub, event, payload, tag)');
  eq(viaGlobal[0], { payload: { line: 'Deploying...' }, mq: { e: 'deployment', rk: 'd1' } },
    'connection.on(event) gets (payload, tag, mq)');
  check(messages.some((m) => m.event === 'Welcome') && messages.some((m) => m.event === 'LogLine'),
    'SocketMessageReceived fires for every message');

  // --- A throwing page callback: the next callbacks still run (Myxi let it
  //     stop them), and the error still surfaces as an uncaught exception.
  const thrown = [];
  const onUncaught = (e) => thrown.push(String(e && e.message));
  process.on('uncaughtException', onUncaught);
  const afterThrow = [];
  const thrower = () => { throw new Error('page bug'); };
  const next = (p) => afterThrow.push(p.status);
  aliceD1.on('StatusChanged', thrower);
  aliceD1.on('StatusChanged', next);
  await publish(port, 'd1', 'StatusChanged', { status: 'building' });
  await waitFor(() => afterThrow.length && thrown.length, 3000);
  process.off('uncaughtException', onUncaught);
  check(aliceD1.off('StatusChanged', thrower) && aliceD1.off('StatusChanged', next) &&
    !aliceD1.off('StatusChanged', next), 'off() removes a callback once (true), then finds none (false)');
  eq([afterThrow, thrown], [['building'], ['page bug']],
    'a throwing callback does not stop the next one; its error is re-thrown on its own');

  // --- The built-in authenticate(token), request() promises matched by tag.
  const bob = new Myxi.Connection(url, FAST);
  const bobSeen = recorder(bob);
  bob.authenticate('demo-bob');
  const bobD3 = bob.subscribe('deployment', 'd3');
  const bobD1 = bob.subscribe('deployment', 'd1');
  const denied = [];
  bobD1.on('SubscriptionRefused', (payload) => denied.push(payload));
  await Promise.race([bobD3.whenSubscribed(), sleep(5000)]);
  check(bobD3.subscribed && bob.userId === '2', 'authenticate(token) -> Authenticated user 2, Subscribed d3', bob.userId);
  const deniedErr = await bobD1.whenSubscribed().then(() => null, (e) => e);
  check(deniedErr && deniedErr.code === 'SubscriptionDenied', 'a denied subscription rejects whenSubscribed() with SubscriptionDenied',
    deniedErr && deniedErr.message);
  check(denied.length === 1 && denied[0].error === 'SubscriptionDenied' && !bob.subscriptions['deployment::d1'],
    'a denied subscription fires SubscriptionRefused and is dropped (not retried after reconnects)',
    JSON.stringify(denied));

  const pongs = await Promise.all([bob.request('Ping'), bob.request('Ping'), bob.request('ListSubscriptions')]);
  check(pongs[0].event === 'Pong' && pongs[1].event === 'Pong' && pongs[0].tag !== pongs[1].tag &&
    typeof pongs[0].payload.time === 'number', 'request(Ping) x2 -> two Pongs, each matched by its own tag',
  JSON.stringify(pongs.slice(0, 2)));
  eq(pongs[2].payload, { subscriptions: { deployment: ['d3'] } }, 'request(ListSubscriptions) -> YourSubscriptions');
  const e1 = await bob.request('Subscribe', { exchange: 'deployment', routing_key: 'd2' }).then(() => null, (e) => e);
  check(e1 && e1.code === 'SubscriptionDenied' && e1.event.tag && e1.payload.routing_key === 'd2',
    'request() of a denied Subscribe rejects with the Error event of that tag', e1 && JSON.stringify(e1.event));
  const e2 = await bob.request('NoSuchAction', {}).then(() => null, (e) => e);
  check(e2 && e2.code === 'InvalidAction', 'request(unknown action) rejects with InvalidAction', e2 && e2.message);

  // --- A refused token: AuthenticationFailed, and no reconnect later.
  const mallory = new Myxi.Connection(url, FAST);
  const malSeen = recorder(mallory);
  mallory.authenticate('not-a-token');
  const malSub = mallory.subscribe('deployment', 'd1');
  await waitFor(() => malSeen.count('AuthenticationFailed'), 3000);
  const failed = malSeen.last('AuthenticationFailed');
  check(failed && failed.info.error === 'InvalidAuthentication' && !mallory.authenticated && mallory.authFailed,
    'a refused token fires AuthenticationFailed {error: InvalidAuthentication}', JSON.stringify(failed));
  check(!malSub.subscribed && malSub.lastError === null, 'nothing is subscribed (or even asked for) before authentication succeeds');

  // --- Restart the daemon on the same port.
  const aliceBefore = alice.sessionId;
  const stopped = await stopDaemon(d);
  check(stopped && stopped.code === 0, 'daemon stopped (SIGTERM)', JSON.stringify(stopped));
  await waitFor(() => aliceSeen.count('SocketClosed') && bobSeen.count('SocketClosed') && malSeen.count('SocketClosed'), 3000);
  // The first SocketClosed after the stop: by the time bob's and
  // mallory's arrive, alice may already have made a reconnect attempt that
  // the stopped daemon refused (1006), which fires SocketClosed too.
  const closed = aliceSeen.find((s) => s.ev === 'SocketClosed');
  check(closed && closed.info.code === 1001 && closed.info.willReconnect === true,
    'SocketClosed surfaces close code 1001 and that it will reconnect', JSON.stringify(closed && closed.info));
  check(aliceSeen.count('SocketDisconnected') === 1 && !aliceD1.subscribed,
    'SocketDisconnected fired; subscriptions marked unsubscribed');
  const malClosed = malSeen.last('SocketClosed');
  check(malClosed && malClosed.info.willReconnect === false && /refused/.test(malClosed.info.why),
    'the connection with a refused token does not reconnect', JSON.stringify(malClosed && malClosed.info));
  await sleep(600);   // a few refused reconnect attempts: the backoff grows
  check(aliceSeen.count('SocketReconnecting') >= 2, 'reconnect attempts while the daemon is down',
    aliceSeen.count('SocketReconnecting'));
  const delays = aliceSeen.filter((s) => s.ev === 'SocketReconnecting').map((s) => s.info.delay);
  check(delays.every((x) => x >= 50 && x <= 400), 'reconnect delays stay within [minDelay/2, maxDelay]', JSON.stringify(delays));

  d = await startDaemon(dir, port);
  const back = await waitFor(() => aliceD1.subscribed && bobD3.subscribed, 5000);
  eq(confirmed, [{ self: true, p: { exchange: 'deployment', routing_key: 'd1' } },
    { self: true, p: { exchange: 'deployment', routing_key: 'd1' } }],
  'SubscriptionConfirmed fired on the subscription at each Subscribed (first and after the restart)');
  check(back, 'after the restart: alice re-authenticated and re-subscribed d1, bob d3, by themselves');
  // Its WebSocket attempts failed while the daemon was down: a server that
  // was away is no proxy breaking WebSocket, so no fallback to SSE (whose
  // Unsubscribe reopens a stream: the old one could still count below).
  eq([alice.transport, bob.transport], ['websocket', 'websocket'],
    'after refused attempts (daemon down) both are still on WebSocket, not SSE');
  eq([aliceSeen.count('SocketAuthenticated'), bobSeen.count('SocketAuthenticated')], [2, 2],
    'SocketAuthenticated fired again on each reconnect');
  check(alice.sessionId !== aliceBefore, 'a new session (new Welcome id)');
  check(!bob.subscriptions['deployment::d1'], 'the denied subscription was not asked for again');
  const r2 = await publish(port, 'd1', 'StatusChanged', { status: 'deployed' });
  eq(r2, { status: 200, body: { ok: true, delivered: 1 } }, 'publish after the restart -> delivered 1 (only alice, d1)');
  const got = await waitFor(() => statuses.find((m) => m.mq && m.payload.status === 'deployed'), 3000);
  check(got, 'alice receives the event published after the restart');
  const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
  eq(health.sessions, 2, 'only alice and bob reconnected (mallory did not)');

  // --- unsubscribe(): the server drops it, nothing more arrives.
  aliceD1.unsubscribe();
  // The subscription leaves conn.subscriptions when the server's
  // Unsubscribed arrives (a fixed sleep was too short under ASan on a
  // loaded machine).
  check(await waitFor(() => !alice.subscriptions['deployment::d1'], 5000),
    'unsubscribe(): the server answers Unsubscribed');
  const r3 = await publish(port, 'd1', 'LogLine', { line: 'after unsubscribe' });
  eq(r3.body && r3.body.delivered, 0, 'unsubscribe() -> the next publish reaches nobody');

  // --- disconnect(): no reconnect.
  alice.disconnect();
  bob.disconnect();
  mallory.disconnect();
  const allClosed = await waitFor(() => !alice.connected && !bob.connected && !mallory.connected, 3000);
  await sleep(400);
  check(allClosed && [alice, bob, mallory].every((c) => !c.connected && c.reconnectTimer === null &&
    c.websocket.readyState === WebSocket.CLOSED), 'disconnect() closes and stops reconnecting');

  // --- Keepalive: a frozen daemon (SIGSTOP) is noticed by the missing Pong.
  const carol = new Myxi.Connection(url, { ...FAST, keepalive: 200, keepaliveTimeout: 400 });
  const carolSeen = recorder(carol);
  carol.authenticate('demo-alice');
  const carolD2 = carol.subscribe('deployment', 'd2');
  await Promise.race([carolD2.whenSubscribed(), sleep(3000)]);
  const pongs2 = [];
  carol.on('Pong', (p, tag) => pongs2.push(tag));
  carol.on('SocketMessageReceived', (data) => { if (data.event === 'Pong') pongs2.push(data.tag); });
  await sleep(1200);
  check(carolSeen.count('SocketClosed') === 0, 'keepalive Pings are answered (3 keepalive timeouts passed); the link stays up');
  eq(pongs2, [], 'the keepalive\'s own Pongs reach no page callback (a Myxi page sees no traffic it did not ask for)');
  d.child.kill('SIGSTOP');
  await sleep(30);    // every thread of the daemon has stopped
  const e3 = await carol.request('ListSubscriptions', {}, { timeout: 150 }).then(() => null, (e) => e);
  check(e3 && e3.code === 'Timeout', 'request() unanswered (daemon stopped) rejects with Timeout', e3 && e3.message);
  const dead = await waitFor(() => carolSeen.last('SocketClosed'), 3000);
  check(dead && dead.info.code === lib.CloseCodes.KEEPALIVE_TIMEOUT && dead.info.local && dead.info.willReconnect,
    'no Pong while the daemon is stopped -> SocketClosed (keepalive timeout), reconnecting',
    JSON.stringify(dead && dead.info));
  d.child.kill('SIGCONT');
  const again = await waitFor(() => carolD2.subscribed && carolSeen.count('SocketAuthenticated') === 2, 5000);
  check(again, 'after SIGCONT: reconnected, re-authenticated, re-subscribed');
  carol.disconnect();

  // --- Close codes, with a scripted WebSocket: 4008 backs off longer.
  class FakeWS {
    constructor() {
      FakeWS.made++;
      setTimeout(() => this.onopen && this.onopen({}), 1);
      setTimeout(() => this.onclose && this.onclose({ code: FakeWS.code, reason: 'x', wasClean: true }), 5);
    }
    send() {}
    close() {}
  }
  FakeWS.made = 0;
  for (const [code, min] of [[4008, 5000], [1008, 5000], [1001, 0]]) {
    FakeWS.code = code;
    const f = new Myxi.Connection('ws://fake/', { WebSocket: FakeWS, minDelay: 100, maxDelay: 400, slowDelay: 5000, keepalive: 0 });
    const fs2 = recorder(f);
    await waitFor(() => fs2.count('SocketClosed'), 1000);
    const info = fs2.last('SocketClosed').info;
    check(info.code === code && info.willReconnect && info.delay >= min && info.delay <= Math.max(min, 400),
      `close ${code} -> reconnect after ${min ? 'at least slowDelay' : 'the normal backoff'}`, JSON.stringify(info));
    f.disconnect();
  }

  const stopped2 = await stopDaemon(d);
  check(stopped2 && stopped2.code === 0, 'daemon stopped');
}

run(main, 60000);
