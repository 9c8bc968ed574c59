// Generated from myxid.js: a classic script defining window.Myxi.
(function (global) {
"use strict";
// myxid.js: the browser (and Node) client for myxid, compatible with Myxi's
// CoffeeScript client (Myxi.Connection / Myxi.Subscription), plus
// reconnection with exponential backoff and jitter, re-authentication and
// re-subscription after every reconnect, a keepalive, close codes surfaced to
// the application, and promises for replies matched by tag.
//
// One dependency-free ES module. In Node, pass a WebSocket implementation:
//   import WebSocket from 'ws';
//   const conn = new Myxi.Connection('ws://127.0.0.1:5005/', { WebSocket });
// The classic-script build (myxid.classic.js) defines window.Myxi instead.
// See clients/js/README.md.

const DEFAULTS = {
  WebSocket: null,          // constructor; default: globalThis.WebSocket
  autoConnect: true,        // connect from the constructor, as Myxi does
  reconnect: true,
  minDelay: 500,            // first reconnect delay (ms), doubled each attempt
  maxDelay: 30000,
  slowDelay: 30000,         // at least this long after 4008 (slow consumer) or 1008
  stableAfter: 10000,       // a socket open this long resets the backoff
  keepalive: 25000,         // send Ping this often (ms); 0: off
  keepaliveTimeout: 10000,  // no Pong within this: the link is dead
  requestTimeout: 10000,    // default timeout of request()
  authRetries: 5,           // AuthUnavailable: retry Authenticate this often
  logger: null,             // e.g. console: debug lines
};

// Close codes the daemon sends (myxid.conf(5)).
const CloseCodes = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL: 1002, POLICY: 1008, TOO_BIG: 1009,
  PING_TIMEOUT: 4000, SLOW_CONSUMER: 4008,
  KEEPALIVE_TIMEOUT: 4900,  // ours, local: no Pong in time
});

// Errors that end a subscription (the server will not change its mind).
const FINAL_SUBSCRIBE_ERRORS = ['SubscriptionDenied', 'InvalidExchange', 'InvalidRoutingKey'];

function keyFor(exchange, routingKey) {
  return routingKey === undefined || routingKey === null ? String(exchange)
    : `${exchange}::${routingKey}`;
}

function defaultUrl() {
  const doc = globalThis.document;
  const meta = doc && doc.querySelector && doc.querySelector('meta[name=myxi-host]');
  if (meta && meta.content) return meta.content;
  const loc = globalThis.location;
  if (loc && /^https?:$/.test(loc.protocol)) {
    return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/`;
  }
  throw new Error('myxid: no server URL given');
}

function toWsUrl(url) {
  if (url === undefined || url === null || url === '') return defaultUrl();
  return String(url).replace(/^http(s?):/i, 'ws$1:');
}

// An Error from a reply: err.code is payload.error ("SubscriptionDenied"...).
class MyxiError extends Error {
  constructor(code, message, event) {
    super(message || code);
    this.name = 'MyxiError';
    this.code = code;
    this.event = event || null;
    this.payload = event ? event.payload : undefined;
  }
}

// ------------------------------------------------------------ Subscription

function Subscription(connection, exchange, routingKey) {
  if (!(this instanceof Subscription)) return new Subscription(connection, exchange, routingKey);
  this.connection = connection;
  this.exchange = exchange;
  this.routingKey = routingKey;
  this.subscribed = false;
  this.reconnect = true;       // re-subscribe after a reconnect (Myxi's name)
  this.callbacks = {};
  this.handlers = [];
  this.lastError = null;
  this.denied = null;          // the MyxiError of a final refusal
  this._waiters = [];
  this._tag = null;
  this._retryTimer = null;
  this._retries = 0;
  if (connection._canSubscribe()) this.subscribe();
}

Subscription.keyFor = keyFor;

// on()/off() of subscriptions and connections: named callback lists.
const callbackMethods = {
  on(event, callback) {
    (this.callbacks[event] = this.callbacks[event] || []).push(callback);
    return this;
  },

  off(event, callback) {
    const list = this.callbacks[event] || [];
    const i = list.indexOf(callback);
    if (i >= 0) list.splice(i, 1);
    return this;
  },
};

Object.assign(Subscription.prototype, {
  key() { return keyFor(this.exchange, this.routingKey); },

  // Send Subscribe now (the connection calls this after every (re)connect).
  subscribe() {
    this.reconnect = true;
    this.denied = null;
    this._tag = this.connection._nextTag('s');
    return this.connection.sendAction('Subscribe',
      { exchange: this.exchange, routing_key: this.routingKey }, this._tag);
  },

  unsubscribe() {
    this.reconnect = false;
    this._clearRetry();
    this._reject(new MyxiError('Unsubscribed', 'unsubscribed by the application'));
    const sent = this.connection.sendAction('Unsubscribe',
      { exchange: this.exchange, routing_key: this.routingKey });
    this.subscribed = false;
    this.connection._forget(this);
    return sent;
  },

  // Myxi 3f8bcb0 style: cb.call(subscription, payload, tag) for one event.
  ...callbackMethods,

  // Myxi's later API: fn.call(param, subscription, event, payload, tag) for
  // events named name ("*" or null: every application event).
  addMessageHandler(name, fn, param) {
    this.handlers.push({ name, fn, param });
    return this;
  },

  removeMessageHandler(name, fn) {
    this.handlers = this.handlers.filter((h) => !(h.name === name && (!fn || h.fn === fn)));
    return this;
  },

  // A promise for the next Subscribed; rejected with a MyxiError on denial.
  whenSubscribed() {
    if (this.subscribed) return Promise.resolve(this);
    if (this.denied) return Promise.reject(this.denied);
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  },

  _isSubscribed(payload) {
    this.subscribed = true;
    this.lastError = null;
    this._retries = 0;
    const waiters = this._waiters.splice(0);
    waiters.forEach((w) => w.resolve(this));
    this._run('Subscribed', payload, null);
  },

  _isUnsubscribed() { this.subscribed = false; },

  _reject(err) {
    const waiters = this._waiters.splice(0);
    waiters.forEach((w) => w.reject(err));
  },

  _clearRetry() {
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
  },

  _receiveMessage(event, payload, tag) {
    this._run(event, payload, tag);
    for (const h of this.handlers.slice()) {
      if (h.name === '*' || h.name === null || h.name === undefined || h.name === event) {
        this.connection._safely(() => h.fn.call(h.param, this, event, payload, tag));
      }
    }
  },

  _run(event, payload, tag) {
    for (const cb of (this.callbacks[event] || []).slice()) {
      this.connection._safely(() => cb.call(this, payload, tag));
    }
  },
});

// ------------------------------------------------------------ Connection

function Connection(serverURL, options) {
  if (!(this instanceof Connection)) return new Connection(serverURL, options);
  if (serverURL && typeof serverURL === 'object' && !(serverURL instanceof URL)) {
    options = serverURL;
    serverURL = options.url;
  }
  this.options = { ...DEFAULTS, ...(options || {}) };
  this.serverURL = toWsUrl(serverURL);
  this.connected = false;
  this.authenticated = false;
  this.subscriptions = {};
  this.callbacks = {};
  this.reconnect = this.options.reconnect;
  this.reconnectTimer = null;
  this.authentication_callback = null;
  this.websocket = null;
  this.sessionId = null;         // from Welcome
  this.userId = null;            // from Authenticated
  this.lastClose = null;         // {code, reason, wasClean, local}
  this.attempts = 0;             // reconnect attempts since the last stable socket
  this.authFailed = null;        // the Error event that refused our token, if any
  this._token = null;
  this._tagSeq = 0;
  this._pending = new Map();     // tag -> {resolve, reject, timer, action}
  this._keepaliveTimer = null;
  this._openedAt = 0;
  this._authRetries = 0;
  this._authRetryTimer = null;
  if (this.options.autoConnect) this.connect();
}

Connection.prototype = {
  ...callbackMethods,

  constructor: Connection,

  connect() {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.reconnect = this.options.reconnect;
    if (this.websocket) return true;     // already open or opening
    const WS = this.options.WebSocket || globalThis.WebSocket;
    if (!WS) throw new Error('myxid: no WebSocket implementation (pass options.WebSocket)');
    let ws;
    try {
      ws = new WS(this.serverURL);
    } catch (e) {
      this._log('cannot open', e);
      this._closed({ code: 1006, reason: String(e && e.message), wasClean: false, local: true });
      return false;
    }
    this.websocket = ws;
    ws.onopen = () => this._opened(ws);
    ws.onmessage = (ev) => this._message(ws, ev);
    ws.onerror = () => {};            // onclose follows and says why
    ws.onclose = (ev) => {
      if (this.websocket !== ws) return;
      this._closed({ code: ev.code, reason: ev.reason || '', wasClean: !!ev.wasClean, local: false });
    };
    return true;
  },

  disconnect() {
    this.reconnect = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.websocket;
    if (ws) {
      try { ws.close(1000); } catch (e) { /* already closing */ }
      this._closed({ code: 1000, reason: 'disconnect()', wasClean: true, local: true });
    }
  },

  // Myxi: callback.call(connection) after every (re)connect; it sends
  // Authenticate, and the app calls isAuthenticated() once Authenticated
  // arrives (which this client also does by itself).
  authentication(callback) {
    this.authentication_callback = callback;
    return this;
  },

  // Built in: send Authenticate {session_id: token} after every connect.
  // token may be a function returning the token or a promise of it. A
  // refused token (InvalidAuthentication, SessionExpired) is not retried:
  // AuthenticationFailed fires and reconnects stop until authenticate() is
  // called again.
  authenticate(token) {
    this._token = token;
    this.authFailed = null;
    this.authentication_callback = this._sendAuthenticate;
    if (this.connected) this._sendAuthenticate();
    else if (!this.websocket && this.reconnect && !this.reconnectTimer) this.connect();
    return this;
  },

  isAuthenticated() {
    if (this.authenticated) return;
    this.authenticated = true;
    this._authRetries = 0;
    this._runCallbacks('SocketAuthenticated');
    this._subscribeAllUnsubscribedSubscriptions();
  },

  sendAction(action, payload, tag) {
    if (!this.connected || !this.websocket) return false;
    const packet = { action, tag, payload: payload === undefined ? {} : payload };
    try {
      this.websocket.send(JSON.stringify(packet));
    } catch (e) {
      this._log('send failed', e);
      return false;
    }
    return true;
  },

  // Send an action with a fresh tag; resolves with the reply event
  // ({event, tag, payload}) carrying that tag, rejects with a MyxiError on
  // an Error/InternalError with that tag, on timeout, or when the socket
  // closes first.
  request(action, payload, options) {
    const timeout = (options && options.timeout) || this.options.requestTimeout;
    const tag = this._nextTag('r');
    return new Promise((resolve, reject) => {
      if (!this.sendAction(action, payload, tag)) {
        reject(new MyxiError('NotConnected', `${action}: not connected`));
        return;
      }
      const timer = setTimeout(() => {
        this._pending.delete(tag);
        reject(new MyxiError('Timeout', `${action}: no reply within ${timeout} ms`));
      }, timeout);
      this._pending.set(tag, { resolve, reject, timer, action });
    });
  },


  subscribe(exchange, routingKey) {
    const existing = this.subscriptions[keyFor(exchange, routingKey)];
    if (existing) {
      if (!existing.reconnect && this._canSubscribe()) existing.subscribe();
      existing.reconnect = true;
      return existing;
    }
    const sub = new Subscription(this, exchange, routingKey);
    this.subscriptions[sub.key()] = sub;
    return sub;
  },

  // ---------------------------------------------------------- internals

  _log(...args) {
    if (this.options.logger) this.options.logger.debug('myxid:', ...args);
  },

  _safely(fn) {
    try {
      fn();
    } catch (e) {
      // One broken handler must not stop the others or the connection.
      setTimeout(() => { throw e; }, 0);
    }
  },

  _nextTag(prefix) {
    this._tagSeq += 1;
    return `${prefix}${this._tagSeq}`;
  },

  // Subscribe now? Once connected, and once authenticated when an
  // authentication routine is set.
  _canSubscribe() {
    return this.connected && (this.authenticated || this.authentication_callback === null);
  },

  _forget(sub) {
    if (this.subscriptions[sub.key()] === sub) delete this.subscriptions[sub.key()];
  },

  _runCallbacks(event, payload, tag, mq) {
    for (const cb of (this.callbacks[event] || []).slice()) {
      this._safely(() => cb.call(this, payload, tag, mq));
    }
  },

  _opened(ws) {
    if (this.websocket !== ws) return;
    this.connected = true;
    this.authenticated = false;
    this._openedAt = Date.now();
    this._log('connected to', this.serverURL);
    this._runCallbacks('SocketConnected');
    this._startKeepalive();
    if (this.authentication_callback === null) {
      this._subscribeAllUnsubscribedSubscriptions();
    } else {
      this._safely(() => this.authentication_callback.call(this));
    }
  },

  _sendAuthenticate() {
    if (this._authRetryTimer) clearTimeout(this._authRetryTimer);
    this._authRetryTimer = null;
    const ws = this.websocket;
    Promise.resolve(typeof this._token === 'function' ? this._token() : this._token)
      .then((token) => {
        if (this.websocket !== ws || !this.connected) return null;
        return this.request('Authenticate', { session_id: token });
      })
      .then((reply) => {
        if (reply && this.websocket === ws) this.isAuthenticated();
      }, (err) => {
        if (this.websocket !== ws || !this.connected) return;
        if (err.code === 'AuthUnavailable' || err.code === 'Timeout') {
          // The backend is down: try again on this socket, with backoff.
          if (this._authRetries < this.options.authRetries) {
            const delay = this._backoff(this._authRetries++);
            this._authRetryTimer = setTimeout(() => this._sendAuthenticate(), delay);
          } else {
            this._runCallbacks('AuthenticationFailed', err.payload || { error: err.code });
          }
        } else if (err.code !== 'AlreadyAuthenticated') {
          this._authRefused(err.event || { payload: { error: err.code } });
        }
      });
  },

  _authRefused(event) {
    this.authFailed = event;
    this.authenticated = false;
    this._runCallbacks('AuthenticationFailed', event.payload, event.tag);
  },

  _subscribeAllUnsubscribedSubscriptions() {
    for (const sub of Object.values(this.subscriptions)) {
      if (!sub.subscribed && sub.reconnect) sub.subscribe();
    }
  },

  _markAllSubscriptionsAsUnsubscribed() {
    for (const sub of Object.values(this.subscriptions)) {
      sub._isUnsubscribed();
      sub._clearRetry();
    }
  },

  _subscriptionByTag(tag) {
    if (tag === null || tag === undefined) return null;
    for (const sub of Object.values(this.subscriptions)) {
      if (sub._tag === tag) return sub;
    }
    return null;
  },

  _message(ws, ev) {
    if (this.websocket !== ws) return;
    let data;
    try {
      data = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data));
    } catch (e) {
      this._log('not JSON', ev.data);
      return;
    }
    if (!data || typeof data !== 'object') return;
    const { event, tag, mq } = data;
    const payload = data.payload || {};

    if (event === 'Welcome') {
      this.sessionId = payload.id;
    } else if (event === 'Subscribed') {
      const sub = this._subscriptionByTag(tag) ||
        this.subscriptions[keyFor(payload.exchange, payload.routing_key)];
      if (sub) sub._isSubscribed(payload);
    } else if (event === 'Unsubscribed') {
      const key = keyFor(payload.exchange_name, payload.routing_key);
      const sub = this.subscriptions[key];
      if (sub) {
        sub._isUnsubscribed();
        // auto: the server revoked it (re-check or Deauthenticate).
        if (payload.auto) {
          sub.reconnect = false;
          sub._reject(new MyxiError('Unsubscribed', 'revoked by the server', data));
          delete this.subscriptions[key];
        }
        sub._run('Unsubscribed', payload, tag);
      }
    } else if (event === 'Authenticated') {
      this.userId = payload.user_id === undefined ? null : payload.user_id;
      this.authFailed = null;
      // Myxi's apps call isAuthenticated() themselves; it is idempotent.
      if (this.authentication_callback !== this._sendAuthenticate) {
        Promise.resolve().then(() => { if (this.websocket === ws) this.isAuthenticated(); });
      }
    } else if (event === 'Deauthenticated') {
      this.authenticated = false;
      this.userId = null;
    } else if (event === 'Error') {
      this._error(data, payload, tag);
    } else if (event === 'Pong' && typeof tag === 'string' && tag.startsWith('k')) {
      this._pong(tag);
    }

    if (mq) {
      const sub = this.subscriptions[keyFor(mq.e, mq.rk)];
      if (sub) sub._receiveMessage(event, payload, tag);
    }
    if (tag !== null && tag !== undefined && this._pending.has(tag)) {
      const p = this._pending.get(tag);
      this._pending.delete(tag);
      clearTimeout(p.timer);
      if (event === 'Error' || event === 'InternalError') {
        p.reject(new MyxiError(payload.error || event, `${p.action}: ${payload.error || event}`, data));
      } else {
        p.resolve(data);
      }
    }
    this._runCallbacks(event, payload, tag, mq);
    this._runCallbacks('SocketMessageReceived', data);
  },

  _error(data, payload, tag) {
    const code = payload.error;
    if (code === 'SessionExpired' ||
        (code === 'InvalidAuthentication' && !this._pending.has(tag))) {
      // A Myxi-style authentication callback, or the periodic re-check.
      this._authRefused(data);
      return;
    }
    const sub = this._subscriptionByTag(tag) ||
      (payload.exchange !== undefined ? this.subscriptions[keyFor(payload.exchange, payload.routing_key)] : null);
    if (!sub) return;
    if (FINAL_SUBSCRIBE_ERRORS.includes(code)) {
      sub.subscribed = false;
      sub.reconnect = false;
      sub.lastError = data;
      this._forget(sub);
      sub.denied = new MyxiError(code, `Subscribe ${sub.key()}: ${code}`, data);
      sub._reject(sub.denied);
      sub._run('Denied', payload, tag);
    } else if (code === 'AlreadySubscribed') {
      sub._isSubscribed(payload);
    } else if (code === 'PolicyUnavailable') {
      // The policy backend is down: ask again later on this socket.
      sub.lastError = data;
      const delay = this._backoff(sub._retries++);
      sub._clearRetry();
      sub._retryTimer = setTimeout(() => {
        sub._retryTimer = null;
        if (sub.reconnect && !sub.subscribed && this.connected) sub.subscribe();
      }, delay);
    } else if (code === 'AuthRequired') {
      // Subscribed before authenticating: isAuthenticated() sends it again.
      sub.lastError = data;
    }
  },

  // Equal jitter: half the exponential delay, plus up to as much again.
  _backoff(attempt) {
    const o = this.options;
    const base = Math.min(o.maxDelay, o.minDelay * 2 ** Math.min(attempt, 30));
    return Math.round(base / 2 + Math.random() * base / 2);
  },

  _startKeepalive() {
    this._stopKeepalive();
    if (!this.options.keepalive) return;
    this._keepaliveTimer = setTimeout(() => this._ping(), this.options.keepalive);
  },

  _stopKeepalive() {
    if (this._keepaliveTimer) clearTimeout(this._keepaliveTimer);
    this._keepaliveTimer = null;
  },

  _ping() {
    const tag = this._nextTag('k');
    this._pingTag = tag;
    if (!this.sendAction('Ping', {}, tag)) return;
    this._keepaliveTimer = setTimeout(() => {
      // No Pong: the link is dead even if the socket does not know yet.
      const ws = this.websocket;
      this._log('keepalive timeout');
      try { if (ws) ws.close(4900, 'keepalive timeout'); } catch (e) { /* ignore */ }
      this._closed({ code: CloseCodes.KEEPALIVE_TIMEOUT, reason: 'keepalive timeout',
        wasClean: false, local: true });
    }, this.options.keepaliveTimeout);
  },

  _pong(tag) {
    if (tag === this._pingTag) this._startKeepalive();
  },

  // The socket is gone (closed by either side, or given up on).
  _closed(info) {
    const ws = this.websocket;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
    }
    this.websocket = null;
    this._stopKeepalive();
    if (this._authRetryTimer) clearTimeout(this._authRetryTimer);
    this._authRetryTimer = null;
    const wasConnected = this.connected;
    this.connected = false;
    this.authenticated = false;
    this._markAllSubscriptionsAsUnsubscribed();
    for (const [tag, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new MyxiError('Disconnected', `${p.action}: the connection closed (${info.code})`));
      this._pending.delete(tag);
    }
    if (wasConnected && Date.now() - this._openedAt >= this.options.stableAfter) this.attempts = 0;

    let delay = null;
    let why = '';
    if (!this.reconnect) {
      why = 'disconnect() was called';
    } else if (this.authFailed) {
      why = `the token was refused (${this.authFailed.payload && this.authFailed.payload.error})`;
    } else {
      delay = this._backoff(this.attempts);
      this.attempts += 1;
      if (info.code === CloseCodes.SLOW_CONSUMER || info.code === CloseCodes.POLICY) {
        // Reconnecting at once would only repeat it: back off for longer.
        delay = Math.max(delay, this.options.slowDelay);
      }
    }
    this.lastClose = { ...info, willReconnect: delay !== null, delay, why };
    this._log('closed', this.lastClose);
    if (wasConnected) this._runCallbacks('SocketDisconnected', this.lastClose);
    this._runCallbacks('SocketClosed', this.lastClose);
    if (delay !== null && this.reconnect) {
      this._runCallbacks('SocketReconnecting', { attempt: this.attempts, delay, code: info.code });
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.connect();
      }, delay);
    }
  },
};

const Myxi = { Connection, Subscription, MyxiError, CloseCodes, version: '0.1.0' };
global.Myxi = Myxi;
})(typeof window !== "undefined" ? window : globalThis);
