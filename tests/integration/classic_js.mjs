// The classic-script build of the browser client (clients/js/myxid.classic.js,
// generated at build time): loaded as a plain script, it defines window.Myxi
// with Myxi's API, the way a page that used Myxi's client includes it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

const built = path.join(path.dirname(process.env.MYXID_BIN || 'server/myxid'), '..',
  'clients', 'js', 'myxid.classic.js');
let passed = 0, failed = 0;
function check(cond, what, detail) {
  if (cond) { passed++; console.log(`PASS: ${what}`); }
  else { failed++; console.log(`FAIL: ${what}${detail ? `\n    ${detail}` : ''}`); }
}

let code = '';
try {
  code = readFileSync(built, 'utf8');
} catch (e) {
  check(false, 'the classic build exists', `${built}: ${e.message}`);
}
check(!/^\s*(export|import)\s/m.test(code), 'no import/export lines (a classic script)');
const window = {};
const sockets = [];
class FakeWebSocket {
  constructor(url) { this.url = url; sockets.push(this); }
  send() {}
  close() {}
}
try {
  vm.runInNewContext(code, { window, setTimeout, clearTimeout, console });
} catch (e) {
  check(false, 'the classic build runs as a plain script', e.stack);
}
const Myxi = window.Myxi;
check(Myxi && typeof Myxi.Connection === 'function', 'window.Myxi.Connection is defined');
check(Myxi && typeof Myxi.Subscription === 'function', 'window.Myxi.Subscription is defined');
if (Myxi) {
  const conn = new Myxi.Connection('ws://127.0.0.1:1/', { WebSocket: FakeWebSocket });
  check(sockets.length === 1 && sockets[0].url === 'ws://127.0.0.1:1/',
    'new Myxi.Connection(url) opens a socket to url, as Myxi\'s did');
  const sub = conn.subscribe('deployment', 'd1');
  check(sub && typeof sub.addMessageHandler === 'function',
    'subscribe() returns a subscription with addMessageHandler');
  conn.disconnect();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
