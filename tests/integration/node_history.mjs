// The browser client (clients/js/myxid.js) in Node, with `ws`, against the
// real daemon's history (embedded mode): a page that subscribes with
// {history: N} gets the last N lines, then live ones; its socket is cut
// twice while numbered lines are published at a steady rate, and it
// resumes by itself each time with "since" (recovered, every line exactly
// once, in order); a daemon restart makes the resume unrecoverable, which
// fires SubscriptionGap (the page refetches) and live lines go on.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  PUBLISH_KEY, SRCDIR, check, eq, freePort, loadModule, prerequisiteMissing, run, sleep,
  startDaemon, stopDaemon, tempDir, waitFor, writeConfig, MYXID_BIN,
} from './myxidtest.mjs';

const WebSocket = loadModule('ws');
if (!WebSocket) prerequisiteMissing('Node package ws (npm ci in tests/integration)');
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);
const { Myxi } = await import(pathToFileURL(path.join(SRCDIR, 'clients/js/myxid.js')).href);

const FAST = { WebSocket, minDelay: 50, maxDelay: 200, keepalive: 0 };

async function line(port, n) {
  const resp = await fetch(`http://127.0.0.1:${port}/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${PUBLISH_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ exchange: 'log', routing_key: 'd1', event: 'Line', payload: { n } }),
  });
  if (resp.status !== 200) throw new Error(`publish ${n}: ${resp.status}`);
}

// Lines from..to at rate per second; resolves when all are published.
async function publishSteadily(port, from, to, rate) {
  const t0 = Date.now();
  for (let n = from; n <= to; n++) {
    await line(port, n);
    const wait = t0 + ((n - from + 1) * 1000) / rate - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

const inOrder = (got, from, to) => got.length === to - from + 1 && got.every((n, i) => n === from + i);

async function main() {
  const dir = tempDir('myxidtest-jshist-');
  const port = await freePort();
  writeConfig(dir, port);
  const conf = path.join(dir, 'history.conf');
  fs.writeFileSync(conf, [
    `listen 127.0.0.1:${port}`, `publish_key ${PUBLISH_KEY}`, 'drain_time 0', 'workers 2',
    'auth static {', '    tokens_file tokens', '}',
    'exchange log {', '    history {', '        events 1000', '    }',
    '    policy static {', '        allow public', '    }', '}', '',
  ].join('\n'));
  let d = await startDaemon(dir, port, conf);
  const url = `ws://127.0.0.1:${port}/`;

  for (let n = 1; n <= 10; n++) await line(port, n);
  const conn = Myxi.Connection(url, FAST);
  conn.authenticate('demo-alice');
  const sub = conn.subscribe('log', 'd1', { history: 4 });
  const got = [];
  const gaps = [];
  sub.on('Line', (p) => got.push(p.n));
  sub.on('SubscriptionGap', (p) => gaps.push(p));
  await waitFor(() => got.length >= 4, 5000);
  eq(got, [7, 8, 9, 10], 'subscribe(..., {history: 4}): the last 4 lines, oldest first');
  check(typeof sub.epoch === 'string' && sub.position > 0, 'the subscription knows its epoch and position',
    `${sub.epoch} ${sub.position}`);

  const publishing = publishSteadily(port, 11, 160, 60);
  await waitFor(() => got.includes(40), 5000);
  conn.websocket.terminate();             // the TCP connection dies: no close frame
  await waitFor(() => got.includes(90), 8000);
  check(sub.recovered === true, 'after a cut the subscription resumed by itself: recovered', sub.recovered);
  conn.websocket.terminate();
  await publishing;
  await waitFor(() => got.includes(160), 8000);
  check(inOrder(got, 7, 160), 'two cuts: lines 7..160 exactly once, in order',
    `${got.length} lines, first wrong at index ${got.findIndex((n, i) => n !== 7 + i)}`);
  eq(gaps.length, 0, 'no SubscriptionGap while history covers the cuts');

  // A restart draws a new epoch: the resume cannot be recovered.
  await stopDaemon(d);
  d = await startDaemon(dir, port, conf);
  const gap = await waitFor(() => gaps[0], 8000);
  check(gap && gap.recovered === false, 'after a restart SubscriptionGap fires with recovered: false',
    JSON.stringify(gap));
  check(sub.recovered === false && sub.subscribed, 'the subscription is live again, marked unrecovered');
  await line(port, 161);
  await waitFor(() => got.includes(161), 5000);
  eq(got.slice(-1), [161], 'live lines go on after the gap');
  conn.disconnect();
  await stopDaemon(d);
}

run(main, 90000);
