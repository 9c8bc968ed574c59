// Presence through the browser client (clients/js/myxid.js) in Node with
// `ws`: subscribe(exchange, key, {presence: true}) gets Presence events on
// the subscription (sub.on('Presence')) with exact users, joined and left;
// a subscriber without the option gets none; after a daemon restart the
// client asks again by itself.

import path from 'node:path';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  SRCDIR, check, eq, freePort, loadModule, prerequisiteMissing, run, startDaemon, stopDaemon,
  tempDir, waitFor, writeConfig, MYXID_BIN, sleep,
} from './myxidtest.mjs';

const WebSocket = loadModule('ws');
if (!WebSocket) prerequisiteMissing('Node package ws (npm ci in tests/integration)');
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);
const { Myxi } = await import(pathToFileURL(path.join(SRCDIR, 'clients/js/myxid.js')).href);

const OPTS = { WebSocket, minDelay: 100, maxDelay: 400, keepalive: 0 };

function presence(users, joined, left) {
  return { exchange: 'deployment', routing_key: 'd1', users, count: users.length, joined, left };
}

async function main() {
  const dir = tempDir('myxidtest-presence-');
  const port = await freePort();
  writeConfig(dir, port, ['presence_interval 200ms'], { exchangeExtra: ['    presence on'] });
  fs.writeFileSync(path.join(dir, 'tokens'),
    'demo-alice 1 deployments=d1,d2\ndemo-carol 3 deployments=d1\n');
  let d = await startDaemon(dir, port);
  const url = `ws://127.0.0.1:${port}/`;

  const alice = new Myxi.Connection(url, OPTS);
  alice.authenticate('demo-alice');
  const sub = alice.subscribe('deployment', 'd1', { presence: true });
  const seen = [];
  sub.on('Presence', (p) => seen.push(p));
  check(await waitFor(() => seen.length >= 1, 3000), 'a Presence event reaches sub.on(\'Presence\')');
  eq(seen[0], presence(['1'], ['1'], []), 'at once: alice herself');

  const carol = new Myxi.Connection(url, OPTS);
  carol.authenticate('demo-carol');
  const carolSub = carol.subscribe('deployment', 'd1');
  const carolSeen = [];
  carolSub.on('Presence', (p) => carolSeen.push(p));
  check(await waitFor(() => seen.length >= 2, 3000), 'carol subscribes: another Presence');
  eq(seen[1], presence(['1', '3'], ['3'], []), 'carol joined');
  carol.disconnect();
  check(await waitFor(() => seen.length >= 3, 3000), 'carol disconnects: another Presence');
  eq(seen[2], presence(['1'], [], ['3']), 'carol left');
  eq(carolSeen, [], 'carol, who did not ask for presence, got no Presence event');

  await stopDaemon(d);
  d = await startDaemon(dir, port);
  check(await waitFor(() => seen.length >= 4, 5000), 'after a daemon restart the client asks again');
  eq(seen[3], presence(['1'], ['1'], []), 'and gets who is there (alice, back)');
  eq(alice.transport, 'websocket', 'still over WebSocket');
  alice.disconnect();
  await sleep(100);
  await stopDaemon(d);
}

run(main);
