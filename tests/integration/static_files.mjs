// static_dir and client_js: the demo page and /myxid.js over GET and HEAD,
// Content-Type and Content-Length, index.html for "/", no directory
// listings or dotfiles, 405 for other methods, and no way out of the root
// (.., encoded dots and slashes, NUL, backslashes, symbolic links), with
// raw requests so that nothing normalizes the path on the way. Also: off
// by default, and `myxid -t` refuses a static_dir that does not exist.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  MYXID_BIN, PLUGIN_DIR, SRCDIR, check, eq, freePort, prerequisiteMissing, run, startDaemon,
  stopDaemon, tempDir, writeConfig,
} from './myxidtest.mjs';

if (!fs.existsSync(MYXID_BIN)) prerequisiteMissing(`the daemon ${MYXID_BIN}`);

// One raw HTTP/1.1 request; resolves with {status, headers, body (Buffer)}.
function raw(port, request) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const chunks = [];
    s.on('connect', () => s.write(request));
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => {
      s.destroy();
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, split).toString('latin1').split('\r\n');
      const headers = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(head[0].split(' ')[1]), headers, body: all.subarray(split + 4) });
    });
    setTimeout(() => { s.destroy(); reject(new Error('no answer')); }, 5000);
  });
}

const get = (port, target, method = 'GET') =>
  raw(port, `${method} ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);

async function main() {
  const dir = tempDir('myxidtest-static-');
  const root = path.join(dir, 'www');
  fs.mkdirSync(path.join(root, 'sub', 'empty'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>t</title>hello');
  fs.writeFileSync(path.join(root, 'app.js'), 'export const x = 1;\n');
  fs.writeFileSync(path.join(root, 'style.css'), 'body{}');
  fs.writeFileSync(path.join(root, 'data.json'), '{"a":1}');
  fs.writeFileSync(path.join(root, 'pic.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  fs.writeFileSync(path.join(root, 'pic.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  fs.writeFileSync(path.join(root, 'a b.txt'), 'space');
  fs.writeFileSync(path.join(root, '.secret'), 'dotfile');
  fs.writeFileSync(path.join(root, 'sub', 'index.html'), 'sub index');
  fs.writeFileSync(path.join(dir, 'outside.txt'), 'OUTSIDE-SECRET');
  fs.symlinkSync(path.join(dir, 'outside.txt'), path.join(root, 'link-out.txt'));
  fs.symlinkSync(path.join(root, 'app.js'), path.join(root, 'link-in.js'));
  fs.symlinkSync(dir, path.join(root, 'dirlink'));
  const clientJs = path.join(SRCDIR, 'clients', 'js', 'myxid.js');

  const port = await freePort();
  writeConfig(dir, port, ['static_dir www', `client_js ${clientJs}`]);
  const rc = execFileSync(MYXID_BIN, ['-t', '-c', path.join(dir, 'myxid.conf'), '-P', PLUGIN_DIR],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  check(true, 'myxid -t accepts static_dir (relative) and client_js (absolute)', rc);
  const d = await startDaemon(dir, port);

  const index = await get(port, '/');
  check(index.status === 200 && index.body.toString() === fs.readFileSync(path.join(root, 'index.html'), 'utf8'),
    'GET / -> index.html', `${index.status} ${index.body}`);
  eq(index.headers['content-type'], 'text/html; charset=utf-8', 'index.html is text/html');
  eq(index.headers['content-length'], String(index.body.length), 'Content-Length matches the body');
  eq(index.headers['x-content-type-options'], 'nosniff', 'X-Content-Type-Options: nosniff');

  for (const [file, type] of [['app.js', 'text/javascript; charset=utf-8'], ['style.css', 'text/css; charset=utf-8'],
    ['data.json', 'application/json'], ['pic.svg', 'image/svg+xml'], ['pic.png', 'image/png']]) {
    const r = await get(port, `/${file}?v=1`);
    check(r.status === 200 && r.headers['content-type'] === type &&
      Buffer.compare(r.body, fs.readFileSync(path.join(root, file))) === 0,
    `GET /${file}?v=1 -> 200 ${type}, exact bytes`, `${r.status} ${r.headers['content-type']}`);
  }
  const head = await get(port, '/app.js', 'HEAD');
  check(head.status === 200 && head.headers['content-length'] === '20' && head.body.length === 0,
    'HEAD /app.js -> Content-Length 20, no body', `${head.status} ${JSON.stringify(head.headers)} ${head.body.length}`);
  const sp = await get(port, '/a%20b.txt');
  check(sp.status === 200 && sp.body.toString() === 'space', 'percent-encoded name /a%20b.txt -> 200');
  const sub = await get(port, '/sub/');
  check(sub.status === 200 && sub.body.toString() === 'sub index', 'GET /sub/ -> sub/index.html');
  const linkIn = await get(port, '/link-in.js');
  check(linkIn.status === 200, 'a symbolic link to a file inside the root is served');

  const js = await get(port, '/myxid.js');
  check(js.status === 200 && js.headers['content-type'] === 'text/javascript; charset=utf-8' &&
    Buffer.compare(js.body, fs.readFileSync(clientJs)) === 0, 'GET /myxid.js -> the client_js file');

  // Nothing outside the root, nothing hidden, no listings.
  const refused = [
    '/../outside.txt', '/%2e%2e/outside.txt', '/%2E%2E/outside.txt', '/sub/../../outside.txt',
    '/..%2foutside.txt', '/sub%2f..%2f..%2foutside.txt', '/..%5coutside.txt', '/..\\outside.txt',
    '/app.js%00.html', '/link-out.txt', '/dirlink/outside.txt', '/.secret', '/%2esecret',
    '/sub', '/sub/empty/', '/sub/empty', '/nope.html', '/%zz', '/%', '/a%2',
  ];
  for (const t of refused) {
    const r = await get(port, t);
    const text = r.body.toString();
    check((r.status === 404 || r.status === 400) && !text.includes('OUTSIDE') && !text.includes('dotfile') &&
      r.headers['content-type'] === 'application/json' && typeof JSON.parse(text).error === 'string',
    `GET ${t} -> ${r.status} JSON error, nothing leaked`, `${r.status} ${text}`);
  }
  const abs = await raw(port, `GET ${dir}/outside.txt HTTP/1.1\r\nHost: x\r\n\r\n`);
  check(abs.status === 404 && !abs.body.toString().includes('OUTSIDE'), 'an absolute file-system path is looked up under the root');

  for (const m of ['POST', 'PUT', 'DELETE']) {
    const r = await raw(port, `${m} /app.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    check(r.status === 405 && r.headers.allow === 'GET, HEAD', `${m} /app.js -> 405 Allow: GET, HEAD`, `${r.status}`);
  }
  const health = await get(port, '/healthz');
  eq(health.status, 200, '/healthz still answers with a static_dir');
  await stopDaemon(d);

  // Off by default.
  const port2 = await freePort();
  const dir2 = tempDir('myxidtest-static-off-');
  writeConfig(dir2, port2);
  const d2 = await startDaemon(dir2, port2);
  const off = await get(port2, '/');
  const offJs = await get(port2, '/myxid.js');
  check(off.status === 404 && offJs.status === 404, 'without static_dir/client_js: / and /myxid.js -> 404');
  await stopDaemon(d2);

  // A missing directory is a configuration error.
  writeConfig(dir2, port2, ['static_dir no-such-dir']);
  let err = '';
  try {
    execFileSync(MYXID_BIN, ['-t', '-c', path.join(dir2, 'myxid.conf'), '-P', PLUGIN_DIR], { stdio: 'pipe' });
  } catch (e) {
    err = String(e.stderr);
  }
  check(/myxid\.conf:\d+: 'static_dir': .*no-such-dir is not a directory/.test(err),
    'myxid -t: a static_dir that does not exist is an error with file:line', err);
  writeConfig(dir2, port2, ['client_js www']);
  fs.mkdirSync(path.join(dir2, 'www'), { recursive: true });
  err = '';
  try {
    execFileSync(MYXID_BIN, ['-t', '-c', path.join(dir2, 'myxid.conf'), '-P', PLUGIN_DIR], { stdio: 'pipe' });
  } catch (e) {
    err = String(e.stderr);
  }
  check(/'client_js': .*www is not a file/.test(err), 'myxid -t: client_js naming a directory is an error', err);

  // The bundled demo configuration serves the demo page and the client.
  const port3 = await freePort();
  const demo = await startDaemon(dir2, port3, path.join(SRCDIR, 'etc', 'myxid.conf'),
    { MYXI_PORT: String(port3) })
    .catch((e) => ({ error: e }));
  if (demo.error) {
    check(false, 'the demo configuration starts', demo.error);
  } else {
    const page = await get(port3, '/');
    check(page.status === 200 && page.body.toString().includes('demo.js'), 'etc/myxid.conf: GET / -> the demo page');
    const lib = await get(port3, '/myxid.js');
    check(lib.status === 200 && lib.body.toString().includes('export function Connection'),
      'etc/myxid.conf: GET /myxid.js -> the client');
    await stopDaemon(demo);
  }
}

run(main, 60000);
