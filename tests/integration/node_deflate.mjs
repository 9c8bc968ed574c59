// permessage-deflate with Node's `ws` (perMessageDeflate, its default
// client offer) against the real daemon: the extension is agreed as myxid
// answers it, a long published event arrives intact (compressed on the
// wire: the bytes received are counted), and a long action that `ws`
// compresses is inflated and answered.

import fs from 'node:fs';
import {
  check, eq, freePort, loadModule, prerequisiteMissing, publish, run,
  startDaemon, stopDaemon, tempDir, writeConfig, MYXID_BIN,
} from './myxidtest.mjs';

const WebSocket = loadModule('ws');
if (!WebSocket) prerequisiteMissing('Node package ws (npm ci in tests/integration)');
if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);

function next(ws) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message within 5 s')), 5000);
    ws.once('message', (data) => { clearTimeout(t); resolve(JSON.parse(String(data))); });
  });
}

async function main() {
  const dir = tempDir('myxidtest-deflate-');
  const port = await freePort();
  writeConfig(dir, port);
  const d = await startDaemon(dir, port);

  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: { threshold: 100 } });
  const welcome = await next(ws);
  eq(welcome.event, 'Welcome', 'ws connects and gets Welcome');
  eq(ws.extensions, 'permessage-deflate', 'ws agreed on permessage-deflate');
  const wire = () => ws._socket.bytesRead;   // bytes off the TCP socket

  ws.send(JSON.stringify({ action: 'Authenticate', payload: { session_id: 'demo-alice' } }));
  eq((await next(ws)).event, 'Authenticated', 'Authenticate');
  ws.send(JSON.stringify({ action: 'Subscribe', payload: { exchange: 'deployment', routing_key: 'd1' } }));
  eq((await next(ws)).event, 'Subscribed', 'Subscribe');

  const line = 'compiling assets for release 42 (step 7 of 12), nothing to report '.repeat(40);
  const before = wire();
  const got = next(ws);
  await publish(port, 'd1', 'LogLine', { line });
  eq(await got, { event: 'LogLine', payload: { line }, mq: { e: 'deployment', rk: 'd1' } },
    'a 2.7 KB log line arrives intact');
  check(wire() - before < line.length / 4, 'and took a fraction of its size on the wire',
    `${wire() - before} bytes for ${line.length}`);

  const tag = 'x'.repeat(3000);
  ws.send(JSON.stringify({ action: 'Ping', tag }));   // ws compresses it (over the threshold)
  const pong = await next(ws);
  eq([pong.event, pong.tag], ['Pong', tag], 'a long action ws compressed is inflated and answered');
  ws.close();
  await stopDaemon(d);
}

run(main, 30000);
