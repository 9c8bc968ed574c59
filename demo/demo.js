// The deployment-log demo: sign in with a demo token, pick a deployment,
// and watch its status changes and log lines arrive over myxid.
import { Myxi } from '/myxid.js';

const $ = (id) => document.getElementById(id);
const conn = new Myxi.Connection();         // ws(s)://this host/
let sub = null;
let current = null;

window.myxidDemo = { conn };                // for the console (and the tests)

function setConn(state, text) {
  $('conn').dataset.state = state;
  $('conn').textContent = text;
}

function addLine(text, cls) {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  const t = document.createElement('time');
  t.textContent = new Date().toLocaleTimeString();
  li.append(t, document.createTextNode(text));
  $('log').append(li);
  $('log').scrollTop = $('log').scrollHeight;
}

function setStatus(status) {
  $('status').dataset.status = status;
  $('status').textContent = status;
}

function curlCommand() {
  const body = JSON.stringify({ exchange: 'deployment', routing_key: current || 'd1',
    event: 'LogLine', payload: { line: 'Deploying...' } });
  return `curl -s -H 'Authorization: Bearer ${$('key').value}' \\\n  -d '${body}' \\\n  ${location.origin}/publish`;
}

function watch(key) {
  if (sub) sub.unsubscribe();
  current = key;
  for (const b of document.querySelectorAll('#deployments button')) {
    b.setAttribute('aria-pressed', String(b.dataset.key === key));
  }
  $('watching').textContent = key;
  $('log').replaceChildren();
  setStatus('unknown');
  $('curl').textContent = curlCommand();
  // The last 50 lines first (the exchange keeps history); after a dropped
  // connection the client resumes where it was, so no line is lost.
  sub = conn.subscribe('deployment', key, { history: 50 });
  const mine = sub;
  sub.on('LogLine', (p) => addLine(String(p.line)));
  sub.on('StatusChanged', (p) => {
    setStatus(String(p.status));
    addLine(`status: ${p.status}`, 'status');
  });
  // History could not cover the time away (the daemon restarted, or it was
  // too long): a real page would refetch the log from its application.
  sub.on('SubscriptionGap', () => addLine('some lines could not be recovered: reload the page for the full log', 'system'));
  sub.on('SubscriptionEnded', (p) => { if (p.auto) addLine(`access to ${key} was revoked`, 'system'); });
  // Subscribed again after every reconnect.
  sub.on('SubscriptionConfirmed', () => {
    addLine(`watching deployment ${key}`, 'system');
    document.body.dataset.watching = key;
  });
  sub.whenSubscribed().catch((err) => {
    if (sub === mine && err.code !== 'Unsubscribed') addLine(`not allowed to watch ${key} (${err.code})`, 'system');
  });
}

conn.on('SocketConnected', () => setConn('connected', 'connected'));
conn.on('SocketClosed', (info) => {
  delete document.body.dataset.watching;
  setConn('closed', info.willReconnect
    ? `closed (${info.code}); retrying in ${(info.delay / 1000).toFixed(1)} s`
    : `closed (${info.code}): ${info.why}`);
});
conn.on('SocketAuthenticated', () => {
  $('who').textContent = `Signed in as user ${conn.userId}.`;
  document.body.dataset.user = conn.userId;
  for (const b of document.querySelectorAll('#deployments button')) b.disabled = false;
  // A Deauthenticate (switching users) dropped the subscription: ask again.
  if (current && !conn.subscriptions[`deployment::${current}`]) watch(current);
});
conn.on('AuthenticationFailed', (p) => {
  $('who').textContent = `Sign-in refused (${p.error}).`;
  delete document.body.dataset.user;
});

$('signin').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (conn.authenticated) await conn.request('Deauthenticate').catch(() => {});
  conn.authenticate($('token').value);
});

for (const b of document.querySelectorAll('#deployments button')) {
  b.disabled = true;
  b.addEventListener('click', () => watch(b.dataset.key));
}

$('publish').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!current) {
    $('published').textContent = 'Pick a deployment first.';
    return;
  }
  const kind = $('kind').value;
  const text = $('text').value;
  const resp = await fetch('/publish', {
    method: 'POST',
    headers: { Authorization: `Bearer ${$('key').value}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ exchange: 'deployment', routing_key: current, event: kind,
      payload: kind === 'LogLine' ? { line: text } : { status: text } }),
  });
  const body = await resp.json().catch(() => ({}));
  $('published').textContent = resp.ok ? `published to ${current}: delivered to ${body.delivered} socket(s)`
    : `publish failed: ${resp.status} ${body.error || ''}`;
});

$('curl').textContent = curlCommand();
