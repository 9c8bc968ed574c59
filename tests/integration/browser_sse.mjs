// SSE in a real browser: Debian's headless Chromium (playwright-core).
// 1. The browser's own EventSource on GET /events receives Welcome,
//    Authenticated, Subscribed and published events by name, with the same
//    JSON a WebSocket client gets; when its connection is cut (through a
//    proxy) it reconnects by itself and its Last-Event-ID header resumes
//    without losing or repeating a line.
// 2. The demo page behind a proxy that refuses WebSocket upgrades: the
//    client (myxid.js) falls back to SSE and the page works the same
//    (signs in, late joiner's history, live lines, its publish form).

import path from 'node:path';
import {
  chromiumOrSkip, logLines,
  SRCDIR, breakingProxy, check, eq, freePort, publish,
  run, sleep, startDaemon, stopDaemon, tempDir, writeConfig,
} from './myxidtest.mjs';

const launchChromium = chromiumOrSkip();

async function eventSource(page, port, proxyPort) {
  // The page comes from the proxy, so EventSource's requests go through it.
  await page.goto(`http://127.0.0.1:${proxyPort}/`);
  await page.evaluate(() => {
    window.got = [];
    window.opens = 0;
    const es = new EventSource('/events?token=demo-alice&subscribe=deployment:d1');
    window.es = es;
    es.onopen = () => { window.opens += 1; };
    for (const name of ['Welcome', 'Authenticated', 'Subscribed', 'Line']) {
      es.addEventListener(name, (e) => window.got.push({ name, data: e.data, id: e.lastEventId }));
    }
  });
  await page.waitForFunction(() => window.got.some((e) => e.name === 'Subscribed'), null, { timeout: 5000 });
  const first = await page.evaluate(() => window.got.map((e) => e.name));
  eq(first, ['Welcome', 'Authenticated', 'Subscribed'], 'EventSource: Welcome, Authenticated, Subscribed, by name');
  const auth = await page.evaluate(() => JSON.parse(window.got[1].data));
  // What a WebSocket client that sends Authenticate without a tag gets.
  eq(auth, { event: 'Authenticated', tag: null, payload: { user_id: '1' } },
    "Authenticated's data is the WebSocket JSON");

  await publish(port, 'd1', 'Line', { n: 1 });
  await page.waitForFunction(() => window.got.some((e) => e.name === 'Line'), null, { timeout: 5000 });
  const ev = await page.evaluate(() => window.got.find((e) => e.name === 'Line'));
  const data = JSON.parse(ev.data);
  eq([data.event, data.payload, data.mq.e, data.mq.rk], ['Line', { n: 1 }, 'deployment', 'd1'],
    "a published event's data is the JSON a WebSocket client gets");
  check(/^[^,/]+\/\d+$/.test(ev.id) && ev.id.endsWith(`/${data.mq.o}`),
    "its id is the subscription's EPOCH/POSITION", ev.id);

  // Lines flow; the proxy cuts every connection twice, and lines are
  // published while the browser is away; EventSource reconnects by itself
  // (after its retry time) with Last-Event-ID.
  for (let n = 2; n <= 60; n++) {
    await publish(port, 'd1', 'Line', { n });
    if (n === 20 || n === 40) {
      globalThis.cut();
      for (let k = n + 1; k <= n + 5; k++) await publish(port, 'd1', 'Line', { n: k });
      n += 5;
      const opens = n < 40 ? 2 : 3;
      await page.waitForFunction((o) => window.opens >= o, opens, { timeout: 10000 });
    }
    await sleep(15);
  }
  await page.waitForFunction(() => window.got.some((e) => e.name === 'Line' && JSON.parse(e.data).payload.n === 60),
    null, { timeout: 15000 });
  await sleep(300);
  const lines = await page.evaluate(() => window.got.filter((e) => e.name === 'Line').map((e) => JSON.parse(e.data).payload.n));
  check(lines.length === 60 && lines.every((n, i) => n === i + 1),
    'EventSource over two cuts: lines 1..60 exactly once, in order (Last-Event-ID)',
    `${lines.length} lines: ${lines.slice(0, 70).join(',')}`);
  check(await page.evaluate(() => window.opens) >= 3, 'EventSource reopened after each cut');
  const recovered = await page.evaluate(() => window.got.filter((e) => e.name === 'Subscribed')
    .map((e) => JSON.parse(e.data).payload.recovered));
  check(recovered.length >= 3 && recovered.slice(1).every((r) => r === true),
    'each reconnect was answered Subscribed with recovered: true', JSON.stringify(recovered));
  await page.evaluate(() => window.es.close());
}

async function demoFallback(page, port, proxyPort) {
  for (let n = 1; n <= 3; n++) await publish(port, 'd2', 'LogLine', { line: `sse-before-${n}` });
  await page.goto(`http://127.0.0.1:${proxyPort}/`);
  await page.waitForSelector('#conn[data-state=connected]', { timeout: 10000 });
  eq(await page.evaluate(() => window.myxidDemo.conn.transport), 'sse',
    'the demo page behind a proxy that refuses WebSocket is connected over SSE');
  await page.selectOption('#token', 'demo-alice');
  await page.click('#signin-button');
  await page.waitForSelector('body[data-user="1"]', { timeout: 5000 });
  check(true, 'signed in over SSE');
  await page.click('#deployments button[data-key=d2]');
  await page.waitForSelector('body[data-watching=d2]', { timeout: 5000 });
  await page.waitForSelector('#log li:has-text("sse-before-3")', { timeout: 5000 });
  eq(await logLines(page, /^sse-before-/), ['sse-before-1', 'sse-before-2', 'sse-before-3'],
    'over SSE the late joiner sees the lines published before it watched');
  await publish(port, 'd2', 'LogLine', { line: 'sse: Deploying release 43' });
  await page.waitForSelector('#log li:has-text("sse: Deploying release 43")', { timeout: 5000 });
  check(true, 'a published line appears in the page over SSE');
  await page.fill('#text', 'typed over sse');
  await page.click('#publish button[type=submit]');
  await page.waitForSelector('#log li:has-text("typed over sse")', { timeout: 5000 });
  check(true, "the page's publish form reaches itself over SSE");
}

async function main() {
  const dir = tempDir('myxidtest-browser-sse-');
  const port = await freePort();
  writeConfig(dir, port, [`static_dir ${path.join(SRCDIR, 'demo')}`,
    `client_js ${path.join(SRCDIR, 'clients', 'js', 'myxid.js')}`, 'sse_keepalive 2s'],
  { exchangeExtra: ['    history {', '        events 200', '    }'] });
  const d = await startDaemon(dir, port);
  const proxyPort = await freePort();
  const proxy = breakingProxy(port);
  await proxy.listen(proxyPort);
  globalThis.cut = proxy.cut;

  const browser = await launchChromium();
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    await eventSource(page, port, proxyPort);
    const demo = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    demo.on('pageerror', (e) => errors.push(String(e)));
    await demoFallback(demo, port, proxyPort);
  } finally {
    await browser.close();
  }
  eq(errors, [], 'no JavaScript errors in the pages');
  proxy.close();
  await stopDaemon(d);
}

run(main, 90000);
