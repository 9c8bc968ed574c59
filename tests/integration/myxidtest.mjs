// Shared helpers of the Node tests of the browser client (node_myxid_js.mjs,
// static_files.mjs, browser_demo.mjs): start a daemon on a loopback port
// (again on the same port for restarts), checks that print PASS/FAIL lines,
// and the exit codes of the harness (0 passed, 1 failed, 77 skipped; a skip
// under CI is a failure). Node packages come from next to this file (npm ci
// in tests/integration) or $MYXID_NODE_MODULES (distcheck trees).

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SRCDIR = process.env.MYXID_SRCDIR || path.resolve(HERE, '..', '..');
const TOP = path.resolve(HERE, '..', '..');
const env = (name, fallback) => process.env[name] || path.join(TOP, fallback);
export const MYXID_BIN = env('MYXID_BIN', 'server/myxid');
export const PLUGIN_DIR = env('MYXID_PLUGIN_DIR', 'plugins/.libs');
export const PUBLISH_KEY = 'demo-publish-key';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const state = { passed: 0, failed: 0, daemons: new Set(), logs: [], timer: null, keep: [] };

export function prerequisiteMissing(what) {
  if (process.env.CI) {
    console.log(`FAIL: prerequisite missing under CI: ${what}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  console.log(`SKIP: prerequisite missing: ${what}`);
  process.exit(77);
}

export function check(cond, what, detail) {
  if (cond) {
    state.passed++;
    console.log(`PASS: ${what}`);
  } else {
    state.failed++;
    console.log(`FAIL: ${what}`);
    if (detail !== undefined) console.log(`    ${String(detail).split('\n').join('\n    ')}`);
  }
  return cond;
}

export function eq(got, want, what) {
  return check(JSON.stringify(got) === JSON.stringify(want), what,
    `got:  ${JSON.stringify(got)}\nwant: ${JSON.stringify(want)}`);
}

export function loadModule(name) {
  const require = createRequire(import.meta.url);
  const candidates = [name];
  if (process.env.MYXID_NODE_MODULES) candidates.push(path.join(process.env.MYXID_NODE_MODULES, name));
  for (const c of candidates) {
    try {
      return require(c);
    } catch (e) {
      // try the next one
    }
  }
  return null;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

export function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  state.keep.push(dir);
  return dir;
}

// The demo's tokens and exchange, plus extra lines (e.g. static_dir).
// drainTime: the drain_time line's value; null for none (the default, 5 s).
// exchangeExtra: lines inside the deployment exchange's block (history).
export function writeConfig(dir, port, extra = [], { drainTime = '0', exchangeExtra = [] } = {}) {
  fs.writeFileSync(path.join(dir, 'tokens'),
    'demo-alice 1 deployments=d1,d2\ndemo-bob 2 deployments=d3\n');
  fs.writeFileSync(path.join(dir, 'myxid.conf'), [
    `listen 127.0.0.1:${port}`,
    `publish_key ${PUBLISH_KEY}`,
    ...(drainTime === null ? [] : [`drain_time ${drainTime}`]),
    ...extra,
    'auth static {', '    tokens_file tokens', '}',
    'exchange deployment {', ...exchangeExtra, '    policy static {', '        allow attribute deployments',
    '    }', '}', '',
  ].join('\n'));
  return path.join(dir, 'myxid.conf');
}

// Start myxid on dir/myxid.conf (written by writeConfig) and wait for port.
export async function startDaemon(dir, port, configPath, extraEnv = {}) {
  const logPath = path.join(dir, `stderr-${Date.now()}.log`);
  state.logs.push(logPath);
  const log = fs.openSync(logPath, 'a');
  const childEnv = { ...process.env };
  delete childEnv.MYXI_PORT; delete childEnv.PORT; delete childEnv.MYXI_BIND_ADDRESS;
  delete childEnv.RABBITMQ_URL;
  Object.assign(childEnv, extraEnv);
  const child = spawn(MYXID_BIN, ['-c', configPath || path.join(dir, 'myxid.conf'), '-P', PLUGIN_DIR],
    { cwd: dir, stdio: ['ignore', log, log], env: childEnv });
  fs.closeSync(log);
  state.daemons.add(child);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    state.daemons.delete(child);
    resolve({ code, signal });
  }));
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await portOpen(port)) return { child, port, dir, exited };
    await sleep(20);
  }
  throw new Error(`myxid did not start (see ${logPath})`);
}

export async function stopDaemon(d, signal = 'SIGTERM') {
  d.child.kill(signal);
  const r = await Promise.race([d.exited, sleep(8000).then(() => null)]);
  if (!r) d.child.kill('SIGKILL');
  return r;
}

export async function publish(port, routingKey, event, payload) {
  const resp = await fetch(`http://127.0.0.1:${port}/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${PUBLISH_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ exchange: 'deployment', routing_key: routingKey, event, payload }),
  });
  return { status: resp.status, body: await resp.json().catch(() => null) };
}

// Resolves with the value once pred() returns a truthy one, else null.
export async function waitFor(pred, ms = 5000, step = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() >= deadline) return null;
    await sleep(step);
  }
}

function dumpLogs() {
  for (const p of state.logs) {
    const text = fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
    console.log(`# ---- stderr of myxid (${p})`);
    for (const line of text.split('\n').slice(-60)) console.log(`# ${line}`);
  }
}

export function finish(code) {
  clearTimeout(state.timer);
  for (const d of state.daemons) d.kill('SIGKILL');
  if (state.failed) dumpLogs();
  else for (const dir of state.keep) fs.rmSync(dir, { recursive: true, force: true });
  console.log(`${state.passed} passed, ${state.failed} failed`);
  process.exit(code || (state.failed ? 1 : 0));
}

// Run main() with a hard timeout; exit with the harness's status.
export function run(main, timeoutMs = 60000) {
  state.timer = setTimeout(() => {
    check(false, `finished within ${timeoutMs / 1000} s`, 'the test hung');
    finish(1);
  }, timeoutMs);
  main().then(() => finish(0), (e) => {
    check(false, 'no exception', e && e.stack);
    finish(1);
  });
}

// Keep a directory (e.g. the browser test's screenshot) after success.
export function keepDir(dir) {
  state.keep = state.keep.filter((d) => d !== dir);
}

// A proxy that breaks WebSocket, as some corporate proxies do: plain HTTP
// is passed on (streamed), an upgrade gets 403. cut() drops
// every connection through it, as a proxy restart would.
export function breakingProxy(target) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const up = http.request({ host: '127.0.0.1', port: target, path: req.url, method: req.method,
      headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('upgrade', (req, sock) => {
    sock.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  return {
    listen: (port) => new Promise((r) => server.listen(port, '127.0.0.1', r)),
    cut: () => { for (const s of sockets) s.destroy(); },
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

// Debian's headless Chromium through playwright-core, or the test is
// skipped (exit 77) when either is missing; and the page's log lines.
export function chromiumOrSkip() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const pw = loadModule('playwright-core');
  if (!pw) prerequisiteMissing('Node package playwright-core (npm ci in tests/integration)');
  if (!fs.existsSync(executablePath)) prerequisiteMissing(`${executablePath} (apt-get install chromium)`);
  if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);
  return () => pw.chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// The texts of the demo page's log lines matching re, in page order (time stripped).
export async function logLines(page, re) {
  const texts = await page.$$eval('#log li', (lis) => lis.map((li) => li.lastChild.textContent));
  return texts.filter((t) => re.test(t));
}
