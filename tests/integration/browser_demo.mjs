// The demo page in a real browser: Debian's headless Chromium, driven by
// playwright-core, loads http://127.0.0.1:PORT/ from myxid (static_dir +
// client_js), signs in as demo-alice, watches d1; events published with
// POST /publish (by the test, and by the page's own form) appear in the
// page; a daemon restart is survived (the page reconnects, re-authenticates
// and re-subscribes). Saves a screenshot and prints its path.

import fs from 'node:fs';
import path from 'node:path';
import {
  chromiumOrSkip, logLines,
  SRCDIR, check, eq, freePort, keepDir, publish, run,
  startDaemon, stopDaemon, tempDir, writeConfig,
} from './myxidtest.mjs';

const launchChromium = chromiumOrSkip();

// The texts of the log lines matching re, in page order (time stripped).
async function main() {
  const dir = tempDir('myxidtest-browser-');
  const port = await freePort();
  writeConfig(dir, port, [`static_dir ${path.join(SRCDIR, 'demo')}`,
    `client_js ${path.join(SRCDIR, 'clients', 'js', 'myxid.js')}`],
  { exchangeExtra: ['    history {', '        events 200', '    }'] });
  let d = await startDaemon(dir, port);

  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    const resp = await page.goto(`http://127.0.0.1:${port}/`);
    eq(resp.status(), 200, 'the demo page loads from myxid');
    await page.waitForSelector('#conn[data-state=connected]', { timeout: 5000 });
    check(true, 'the page connects its WebSocket (/myxid.js loaded as a module)');

    await page.selectOption('#token', 'demo-alice');
    await page.click('#signin-button');
    await page.waitForSelector('body[data-user="1"]', { timeout: 5000 });
    check((await page.textContent('#who')).includes('user 1'), 'signed in as demo-alice (user 1)');

    for (let n = 1; n <= 3; n++) await publish(port, 'd1', 'LogLine', { line: `before-${n}` });
    await page.click('#deployments button[data-key=d1]');
    await page.waitForSelector('body[data-watching=d1]', { timeout: 5000 });
    check(true, 'watching deployment d1 (Subscribed)');
    await page.waitForSelector('#log li:has-text("before-3")', { timeout: 5000 });
    eq(await logLines(page, /^before-/), ['before-1', 'before-2', 'before-3'],
      'a late joiner sees the lines published before it watched (history: 50)');

    const r = await publish(port, 'd1', 'LogLine', { line: 'browser-test: Deploying release 42' });
    eq(r.body && r.body.delivered, 1, 'POST /publish reaches the page\'s socket');
    await page.waitForSelector('#log li:has-text("browser-test: Deploying release 42")', { timeout: 5000 });
    check(true, 'the published log line appears in the page');
    eq(await page.evaluate(() => window.myxidDemo.conn.websocket.extensions),
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
      'Chromium agreed on permessage-deflate');
    const long = `browser-test: a long compressed line ${'x'.repeat(600)} end`;
    await publish(port, 'd1', 'LogLine', { line: long });
    await page.waitForSelector('#log li:has-text("a long compressed line")', { timeout: 5000 });
    eq((await logLines(page, /a long compressed line/))[0], long,
      'a line long enough to be compressed arrives intact');

    await publish(port, 'd1', 'StatusChanged', { status: 'deployed' });
    await page.waitForSelector('#status[data-status=deployed]', { timeout: 5000 });
    check(true, 'a StatusChanged event updates the status badge');

    await page.fill('#text', 'typed into the form');
    await page.click('#publish button[type=submit]');
    await page.waitForSelector('#log li:has-text("typed into the form")', { timeout: 5000 });
    check((await page.textContent('#published')).includes('delivered to 1'),
      'the page\'s own publish form delivers to itself');

    // The page's socket goes away; lines published meanwhile arrive once
    // it has resumed by itself, each once and in order.
    await page.evaluate(() => window.myxidDemo.conn.websocket.close(4000, 'test'));
    for (let n = 1; n <= 5; n++) await publish(port, 'd1', 'LogLine', { line: `away-${n}` });
    await page.waitForSelector('#log li:has-text("away-5")', { timeout: 10000 });
    eq(await logLines(page, /^away-/), ['away-1', 'away-2', 'away-3', 'away-4', 'away-5'],
      'lines published while the page was disconnected arrive once, in order, after it resumes');

    // Restart the daemon: the page reconnects, signs in again, re-subscribes.
    // Every text the connection badge shows is recorded: the client may
    // already be retrying (and failing, the port being closed) by the time
    // the test looks.
    await page.evaluate(() => {
      const el = document.querySelector('#conn');
      window.connTexts = [el.textContent];
      new MutationObserver(() => window.connTexts.push(el.textContent))
        .observe(el, { childList: true, characterData: true, subtree: true });
    });
    const restartErrors = errors.length;
    await stopDaemon(d);
    await page.waitForSelector('#conn[data-state=closed]', { timeout: 5000 });
    const texts = await page.evaluate(() => window.connTexts);
    check(texts.some((t) => t.includes('1001')), 'the page shows the close code (1001) and retries',
      JSON.stringify(texts));
    d = await startDaemon(dir, port);
    await page.waitForSelector('body[data-watching=d1]', { timeout: 10000 });
    await publish(port, 'd1', 'LogLine', { line: 'after the restart' });
    await page.waitForSelector('#log li:has-text("after the restart")', { timeout: 5000 });
    check(true, 'after a daemon restart the page receives events again by itself');
    check((await page.textContent('#log')).includes('some lines could not be recovered'),
      'the restart lost the in-memory history: the page says so (SubscriptionGap)');

    const shot = path.join(dir, 'demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    check(fs.statSync(shot).size > 1000, `screenshot saved: ${shot}`);
    keepDir(dir);
    // A reconnect attempt while the daemon was down is logged by Chromium
    // as a failed WebSocket connection: expected then, and only then.
    const refused = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/' failed: .*ERR_CONNECTION_REFUSED/;
    eq(errors.filter((e, i) => !(i >= restartErrors && refused.test(e))), [],
      'no JavaScript errors in the page (but refused reconnects while the daemon was down)');
  } finally {
    await browser.close();
  }
  await stopDaemon(d);
}

run(main, 90000);
