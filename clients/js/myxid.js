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
  sse: true,                // fall back to SSE when a WebSocket cannot open but HTTP can
  probeTimeout: 5000,       // ms: that HTTP check (GET sseUrl) gives up after this
  sseUrl: null,             // default: the server's http(s) URL with path /events
  transport: 'websocket',   // the first transport tried: 'websocket' or 'sse'
  fetch: null,              // for SSE; default: globalThis.fetch
};

// Close codes the daemon sends (myxid.conf(5)).
export const CloseCodes = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL: 1002, POLICY: 1008, TOO_BIG: 1009,
  PING_TIMEOUT: 4000, SLOW_CONSUMER: 4008,
  KEEPALIVE_TIMEOUT: 4900,  // ours, local: no Pong in time
});

// Errors that end a subscription (the server will not change its mind).
const FINAL_SUBSCRIBE_ERRORS = ['SubscriptionDenied', 'InvalidExchange', 'InvalidRoutingKey'];

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

function toSseUrl(wsUrl) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = '/events';
  u.search = '';
  return u.toString();
}

// An Error from a reply: err.code is payload.error ("SubscriptionDenied"...).
export class MyxiError extends Error {
  constructor(code, message, event) {
    super(message || code);
    this.name = 'MyxiError';
    this.code = code;
    this.event = event || null;
    this.payload = event ? event.payload : undefined;
  }
}

// ------------------------------------------------------------ Subscription
//
// Myxi's API keeps Myxi's semantics to the letter: what each function
// returns, what `this` is in a callback, when callbacks fire, what happens
// while disconnected. The few places where myxid deliberately differs (Myxi
// bugs) are listed in clients/js/README.md, and
// tests/integration/myxi_compat.mjs runs the same page against both clients.

export function Subscription(connection, exchange, routingKey, options) {
  if (!(this instanceof Subscription)) return new Subscription(connection, exchange, routingKey, options);
  this.connection = connection;
  this.exchange = exchange;
  this.routingKey = routingKey;
  this.subscribed = false;
  this.reconnect = true;       // re-subscribe after a reconnect
  this.callbacks = {};
  this.messageHandlers = {};   // name -> {handler, param}, as Myxi keeps them
  // myxid's additions.
  this.lastError = null;       // the last Error event about this subscription
  this.denied = null;          // the MyxiError of a final refusal
  this._waiters = [];
  this._retryTimer = null;
  this._retries = 0;
  this._resubscribing = false; // subscribe() again before Unsubscribed came back
  // History (an exchange that keeps it): where this subscription is, to
  // resume there after a reconnect, and what the page asked for at first.
  this.position = null;        // the last position ("mq.o") received
  this.epoch = null;           // the server's epoch of those positions
  this.recovered = null;       // the last resume: true, false, or null (none)
  this._history = options && options.history > 0 ? Math.floor(options.history) : null;
  this._asked = null;          // what the Subscribe in flight asked: 'since', 'history' or null
  // Presence (an exchange with presence on): Presence events, on this
  // subscription like any other event, say who is subscribed.
  this._presence = !!(options && options.presence);
  if (connection._canSubscribe()) this.subscribe();
}

// Myxi's key: the exchange alone, or "exchange::routingKey".
Subscription.keyFor = function keyFor(exchange, routingKey) {
  let key = exchange;
  if (routingKey !== undefined && routingKey !== null) key = `${key}::${routingKey}`;
  return key;
};

// on(): Myxi returns the new number of callbacks for that event (Array push).
function addCallback(callbacks, event, callback) {
  (callbacks[event] = callbacks[event] || []);
  return callbacks[event].push(callback);
}

function removeCallback(callbacks, event, callback) {
  const list = callbacks[event] || [];
  const i = list.indexOf(callback);
  if (i < 0) return false;
  list.splice(i, 1);
  return true;
}

Object.assign(Subscription.prototype, {
  key() { return Subscription.keyFor(this.exchange, this.routingKey); },

  // Sends Subscribe (no tag, as Myxi: replies are matched by exchange and
  // routing key); returns sendAction()'s answer. On an exchange with
  // history it resumes after the last position received, or asks for the
  // last N events the first time when subscribe() was given {history: N}.
  subscribe() {
    const payload = { exchange: this.exchange, routing_key: this.routingKey };
    if (this._presence) payload.presence = true;
    this.denied = null;
    this._asked = null;
    if (this.epoch !== null && this.position !== null) {
      payload.since = { offset: this.position, epoch: this.epoch };
      this._asked = 'since';
    } else if (this._history !== null) {
      payload.history = this._history;
      this._asked = 'history';
    }
    return this.connection.sendAction('Subscribe', payload);
  },

  // Myxi: true once Unsubscribe is sent; the subscription leaves
  // connection.subscriptions when the server's Unsubscribed arrives.
  // While disconnected Myxi returned false and kept the subscription, which
  // then came back after the next reconnect; myxid returns false too but
  // drops it, so it does not come back.
  unsubscribe() {
    this._clearRetry();
    this._resubscribing = false;
    this._reject(new MyxiError('Unsubscribed', 'unsubscribed by the application'));
    if (this.connection.sendAction('Unsubscribe', { exchange: this.exchange, routing_key: this.routingKey })) {
      this.subscribed = false;
      this.reconnect = false;
      return true;
    }
    this.reconnect = false;
    this.connection._forget(this);
    return false;
  },

  // Myxi: a handler named `name` (the same name again replaces it), called
  // for every message of the subscription as handler.call(param, sub,
  // event, payload, tag). Returns the stored {handler, param}.
  addMessageHandler(name, handler, param) {
    this.messageHandlers[name] = { handler, param };
    return this.messageHandlers[name];
  },

  removeMessageHandler(name) {
    if (!this.messageHandlers[name]) return false;
    delete this.messageHandlers[name];
    return true;
  },

  // callback.call(subscription, payload, tag) for the messages named event.
  on(event, callback) { return addCallback(this.callbacks, event, callback); },

  off(event, callback) { return removeCallback(this.callbacks, event, callback); },

  // A promise for the next Subscribed; rejected with a MyxiError on denial.
  whenSubscribed() {
    if (this.subscribed) return Promise.resolve(this);
    if (this.denied) return Promise.reject(this.denied);
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  },

  _isSubscribed(payload) {
    this.subscribed = true;
    this.lastError = null;
    this.denied = null;
    this._retries = 0;
    const gap = this._positionAt(payload || {});
    const waiters = this._waiters.splice(0);
    waiters.forEach((w) => w.resolve(this));
    this._emit('SubscriptionConfirmed', payload);
    if (gap) this._emit('SubscriptionGap', payload);
  },

  // Subscribed on an exchange with history: {epoch, offset, recovered}.
  // Replayed events (older than offset) follow it, so the position moves
  // with the events themselves; only where none older will come does it
  // jump to offset. Returns true when a resume could not be recovered.
  _positionAt(payload) {
    if (payload.epoch === undefined || typeof payload.offset !== 'number') return false;
    const asked = this._asked;
    this._asked = null;
    this.epoch = payload.epoch;
    if (asked === 'since') this.recovered = payload.recovered === true;
    if (asked === null || (asked === 'since' && payload.recovered !== true)) {
      this.position = Math.max(this.position === null ? 0 : this.position, payload.offset);
    }
    return asked === 'since' && payload.recovered !== true;
  },

  _moved(mq) {
    if (mq && typeof mq.o === 'number' && (this.position === null || mq.o > this.position)) {
      this.position = mq.o;
    }
  },

  _isUnsubscribed() { this.subscribed = false; },

  _refused(err, data) {
    this.lastError = data;
    this.denied = err;
    this._reject(err);
    this._emit('SubscriptionRefused', data.payload);
  },

  _reject(err) {
    const waiters = this._waiters.splice(0);
    waiters.forEach((w) => w.reject(err));
  },

  _clearRetry() {
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
  },

  // Myxi's order: the callbacks of that event, then every message handler.
  _receiveMessage(event, payload, tag, mq) {
    this._moved(mq);
    this._emit(event, payload, tag);
    for (const name in this.messageHandlers) {
      const opts = this.messageHandlers[name];
      this.connection._safely(() => opts.handler.call(opts.param, this, event, payload, tag));
    }
  },

  _emit(event, payload, tag) {
    for (const cb of (this.callbacks[event] || []).slice()) {
      this.connection._safely(() => cb.call(this, payload, tag));
    }
  },
});

// ------------------------------------------------------------ Connection

export function Connection(serverURL, options) {
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
  this.websocket = null;         // the latest socket, open or not (as Myxi's)
  // myxid's additions.
  this.sessionId = null;         // from Welcome
  this.userId = null;            // from Authenticated
  this.lastClose = null;         // {code, reason, wasClean, local, ...}
  this.attempts = 0;             // reconnect attempts since the last stable socket
  this.authFailed = null;        // the Error event that refused authenticate()'s token
  this._live = null;             // the socket whose events count
  this._token = null;
  this._builtinAuth = false;     // authenticate(token) is in use
  this._tagSeq = 0;
  this._pending = new Map();     // tag -> {resolve, reject, timer, action}
  this._keepaliveTimer = null;
  this._pingTag = null;
  this._openedAt = 0;
  this._probing = false;          // an HTTP check of the SSE endpoint is out
  this._httpOk = false;           // it got an answer since the last open WebSocket
  this._authRetries = 0;
  this._authRetryTimer = null;
  this.transport = this.options.transport === 'sse' ? 'sse' : 'websocket';
  if (this.options.autoConnect) this.connect();
}

Connection.prototype = {
  constructor: Connection,

  // Myxi returns true. Myxi opened a second socket when called while
  // connected; myxid keeps the one it has. A refused token or disconnect()
  // is forgotten: connect() means "be connected again".
  connect() {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.reconnect = this.options.reconnect;
    if (this._live) return true;
    let ws;
    if (this.transport === 'sse') {
      ws = new SseSocket(this, this.options.sseUrl || toSseUrl(this.serverURL));
    } else {
      const WS = this.options.WebSocket || globalThis.WebSocket;
      if (!WS) throw new Error('myxid: no WebSocket implementation (pass options.WebSocket)');
      ws = new WS(this.serverURL);     // a bad URL throws, as in Myxi
    }
    let opened = false;
    const httpBefore = this._httpOk;   // HTTP got through before this attempt
    this.websocket = ws;
    this._live = ws;
    ws.onopen = () => { opened = true; this._httpOk = false; this._opened(ws); };
    ws.onmessage = (ev) => this._message(ws, ev);
    ws.onerror = () => {};            // onclose follows and says why
    ws.onclose = (ev) => {
      if (this._live !== ws) return;
      if (!opened && this.transport === 'websocket' && this.options.sse) {
        if (httpBefore) {
          this._log('WebSocket does not open where HTTP does; falling back to SSE');
          this.transport = 'sse';
        } else {
          this._probeSse();
        }
      }
      this._closed({ code: ev.code, reason: ev.reason || '', wasClean: !!ev.wasClean, local: false });
    };
    return true;
  },

  // A WebSocket that never opened: a proxy that breaks the upgrade, or a
  // server that is down or restarting. Only in the first case does plain
  // HTTP get through to a server that serves while WebSocket still fails, so
  // ask the SSE endpoint (without a token it refuses at once, 4xx); if it
  // answered so and the next WebSocket attempt fails too, that and every
  // later attempt go over SSE. A server that was merely away (and may be
  // back by the time it answers), draining (503), or without SSE (404)
  // keeps its clients on WebSocket.
  _probeSse() {
    const fetchImpl = this.options.fetch || globalThis.fetch;
    if (!fetchImpl || this._probing) return;
    this._probing = true;
    const abort = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = setTimeout(() => { if (abort) abort.abort(); }, this.options.probeTimeout);
    Promise.resolve()
      .then(() => fetchImpl(this.options.sseUrl || toSseUrl(this.serverURL), {
        headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: abort ? abort.signal : undefined,
      }))
      .then((res) => {
        try { if (res.body && res.body.cancel) res.body.cancel(); } catch (e) { /* drained */ }
        if (res.status >= 200 && res.status < 500 && res.status !== 404) this._httpOk = true;
      }, () => { /* no HTTP either: the server is away; stay on WebSocket */ })
      .then(() => { clearTimeout(timer); this._probing = false; });
  },

  // As Myxi: stop reconnecting and close the socket; SocketDisconnected and
  // SocketClosed fire when the close completes.
  disconnect() {
    this.reconnect = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this._stopKeepalive();
    this._stopAuthRetry();
    if (this.websocket) {
      try { this.websocket.close(); } catch (e) { /* already closing */ }
    }
  },

  // Myxi: callback.call(connection) after every (re)connect; it sends
  // Authenticate, and the page calls isAuthenticated() once Authenticated
  // arrives. Returns the callback, as Myxi does.
  authentication(callback) {
    this.authentication_callback = callback;
    this._builtinAuth = false;
    return callback;
  },

  // Built in: send Authenticate {session_id: token} after every connect and
  // call isAuthenticated() on Authenticated. token may be a function
  // returning the token or a promise of it. A refused token
  // (InvalidAuthentication, SessionExpired) is not retried:
  // AuthenticationFailed fires and reconnects stop until authenticate() is
  // called again.
  authenticate(token) {
    this._token = token;
    this.authFailed = null;
    this.authentication_callback = this._sendAuthenticate;
    this._builtinAuth = true;
    if (this.connected) this._sendAuthenticate();
    else if (!this._live && !this.reconnectTimer) this.connect();
    return this;
  },

  // Myxi: marks the connection authenticated, fires SocketAuthenticated
  // and sends the waiting subscriptions, every time it is called; returns
  // what each subscription's subscribe() returned (undefined for the rest).
  isAuthenticated() {
    this.authenticated = true;
    this._authRetries = 0;
    this._runCallbacks('SocketAuthenticated');
    return this._subscribeAllUnsubscribedSubscriptions();
  },

  // Myxi: {action, tag, payload} as given (JSON drops an undefined tag or
  // payload); false when not connected.
  sendAction(action, payload, tag) {
    if (!this.connected || !this._live) return false;
    try {
      this._live.send(JSON.stringify({ action, tag, payload }));
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
      if (!this.sendAction(action, payload === undefined ? {} : payload, tag)) {
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

  // callback.call(connection, payload, tag, mq) for every server event of
  // that name; Myxi returns the new number of callbacks for it.
  on(event, callback) { return addCallback(this.callbacks, event, callback); },

  off(event, callback) { return removeCallback(this.callbacks, event, callback); },

  // Myxi: the existing Subscription of that exchange and key, or a new one.
  // Myxi's existing subscription after unsubscribe() stayed unsubscribed
  // until Unsubscribed came back; myxid subscribes it again.
  // myxid: options {history: N} asks an exchange with history for the last
  // N events first (a late joiner); {presence: true} asks for Presence
  // events (who else is subscribed) on an exchange with presence on.
  subscribe(exchange, routingKey, options) {
    const existing = this.subscriptions[Subscription.keyFor(exchange, routingKey)];
    if (existing) {
      if (!existing.reconnect) {
        existing.reconnect = true;
        existing._resubscribing = true;
        if (this._canSubscribe()) existing.subscribe();
      }
      return existing;
    }
    const sub = new Subscription(this, exchange, routingKey, options);
    this.subscriptions[sub.key()] = sub;
    return sub;
  },

  // ---------------------------------------------------------- internals

  _log(...args) {
    if (this.options.logger) this.options.logger.debug('myxid:', ...args);
  },

  // Myxi let one throwing callback stop the others and the rest of the
  // message's handling; here the error is re-thrown on its own (so it still
  // reaches window.onerror and the console) and the others still run.
  _safely(fn) {
    try {
      fn();
    } catch (e) {
      setTimeout(() => { throw e; }, 0);
    }
  },

  _nextTag(prefix) {
    this._tagSeq += 1;
    return `${prefix}${this._tagSeq}`;
  },

  // Subscribe now? Once connected, and once authenticated when an
  // authentication routine is set (Myxi sent it before authenticating and
  // got AuthRequired back, then sent it again).
  _canSubscribe() {
    return this.connected && (this.authenticated || this.authentication_callback === null);
  },

  _forget(sub) {
    if (this.subscriptions[sub.key()] === sub) delete this.subscriptions[sub.key()];
  },

  _subscriptionFor(exchange, routingKey) {
    return this.subscriptions[Subscription.keyFor(exchange, routingKey)] || null;
  },

  _runCallbacks(event, payload, tag, mq) {
    for (const cb of (this.callbacks[event] || []).slice()) {
      this._safely(() => cb.call(this, payload, tag, mq));
    }
  },

  // Myxi's order: SocketConnected (only when not connected before) runs
  // while `connected` is still false, then the authentication routine.
  _opened(ws) {
    if (this._live !== ws) return;
    this._openedAt = Date.now();
    this._log('connected to', this.serverURL);
    if (this.connected === false) this._runCallbacks('SocketConnected');
    this.connected = true;
    this._startKeepalive();
    if (this.authentication_callback === null) {
      this._subscribeAllUnsubscribedSubscriptions();
    } else {
      this._safely(() => this.authentication_callback.call(this));
    }
  },

  _sendAuthenticate() {
    this._stopAuthRetry();
    const ws = this._live;
    Promise.resolve(typeof this._token === 'function' ? this._token() : this._token)
      .then((token) => {
        if (this._live !== ws || !this.connected) return null;
        return this.request('Authenticate', { session_id: token });
      })
      .then((reply) => {
        if (reply && this._live === ws) this.isAuthenticated();
      }, (err) => this._authenticateFailed(ws, err));
  },

  _authenticateFailed(ws, err) {
    if (this._live !== ws || !this.connected) return;
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
  },

  _stopAuthRetry() {
    if (this._authRetryTimer) clearTimeout(this._authRetryTimer);
    this._authRetryTimer = null;
  },

  // A refused token. Only authenticate()'s own token stops reconnecting: a
  // page with its own authentication routine decides that itself, as with
  // Myxi.
  _authRefused(event) {
    if (this._builtinAuth) this.authFailed = event;
    this.authenticated = false;
    this._runCallbacks('AuthenticationFailed', event.payload, event.tag);
  },

  _subscribeAllUnsubscribedSubscriptions() {
    const results = [];
    for (const key in this.subscriptions) {
      const sub = this.subscriptions[key];
      results.push(sub.subscribed === false && sub.reconnect === true ? sub.subscribe() : undefined);
    }
    return results;
  },

  _markAllSubscriptionsAsUnsubscribed() {
    for (const key in this.subscriptions) {
      this.subscriptions[key]._isUnsubscribed();
      this.subscriptions[key]._clearRetry();
    }
  },

  _message(ws, ev) {
    if (this._live !== ws) return;
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
    // The keepalive's own Pong: not the page's business.
    if (event === 'Pong' && tag !== null && tag !== undefined && tag === this._pingTag) {
      this._startKeepalive();
      return;
    }
    this._settle(data, event, payload, tag);

    // Myxi's dispatch: these three change subscription state and run no
    // callbacks of their own; everything else reaches the subscription of
    // its mq, then the connection's callbacks.
    if (event === 'Subscribed') {
      const sub = this._subscriptionFor(payload.exchange, payload.routing_key);
      if (sub) sub._isSubscribed(payload);
    } else if (event === 'Unsubscribed') {
      this._unsubscribed(payload);
    } else if (event === 'Error' && payload.error === 'SubscriptionDenied') {
      const sub = this._subscriptionFor(payload.exchange, payload.routing_key);
      if (sub) {
        sub._isUnsubscribed();
        this._forget(sub);
        sub._refused(new MyxiError('SubscriptionDenied', `Subscribe ${sub.key()}: SubscriptionDenied`, data), data);
      }
    } else {
      if (event === 'Welcome') this.sessionId = payload.id === undefined ? null : payload.id;
      else if (event === 'Authenticated') this._authenticated(payload);
      else if (event === 'Deauthenticated') this.authenticated = false;
      else if (event === 'Error') this._error(data, payload);
      if (mq) {
        const sub = this._subscriptionFor(mq.e, mq.rk);
        if (sub) sub._receiveMessage(event, payload, tag, mq);
      }
      this._runCallbacks(event, payload, tag, mq);
    }
    this._runCallbacks('SocketMessageReceived', data);
  },

  _authenticated(payload) {
    this.userId = payload.user_id === undefined ? null : payload.user_id;
    this.authFailed = null;
  },

  // Myxi drops the subscription named by any Unsubscribed. Not when the
  // page subscribed it again after unsubscribe(): that Subscribe follows.
  _unsubscribed(payload) {
    const sub = this._subscriptionFor(payload.exchange_name, payload.routing_key);
    if (!sub) return;
    sub._isUnsubscribed();
    if (sub._resubscribing && !payload.auto) {
      sub._resubscribing = false;
    } else {
      if (payload.auto) sub._reject(new MyxiError('Unsubscribed', 'revoked by the server'));
      sub.reconnect = false;
      this._forget(sub);
    }
    sub._emit('SubscriptionEnded', payload);
  },

  // A reply to request(): resolve or reject its promise.
  _settle(data, event, payload, tag) {
    if (tag === null || tag === undefined || !this._pending.has(tag)) return;
    const p = this._pending.get(tag);
    this._pending.delete(tag);
    clearTimeout(p.timer);
    if (event === 'Error' || event === 'InternalError') {
      p.reject(new MyxiError(payload.error || event, `${p.action}: ${payload.error || event}`, data));
    } else {
      p.resolve(data);
    }
  },

  // What myxid does about an Error beyond Myxi's callbacks (which still run).
  _error(data, payload) {
    const code = payload.error;
    if (code === 'SessionExpired' || (code === 'InvalidAuthentication' && !this._builtinAuth)) {
      // The periodic re-check, or a page's own authentication routine.
      this._authRefused(data);
      return;
    }
    if (payload.exchange === undefined) return;
    const sub = this._subscriptionFor(payload.exchange, payload.routing_key);
    if (!sub) return;
    sub.lastError = data;
    if (code === 'InvalidExchange' || code === 'InvalidRoutingKey' || code === 'TooManySubscriptions') {
      sub._refused(new MyxiError(code, `Subscribe ${sub.key()}: ${code}`, data), data);
    } else if (code === 'AlreadySubscribed') {
      sub._isSubscribed(payload);
    } else if (code === 'PolicyUnavailable') {
      // The policy backend is down: ask again later on this socket.
      const delay = this._backoff(sub._retries++);
      sub._clearRetry();
      sub._retryTimer = setTimeout(() => {
        sub._retryTimer = null;
        if (sub.reconnect && !sub.subscribed && this.connected) sub.subscribe();
      }, delay);
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
    this._pingTag = null;
  },

  _ping() {
    const tag = this._nextTag('k');
    if (!this.sendAction('Ping', {}, tag)) return;
    this._pingTag = tag;
    this._keepaliveTimer = setTimeout(() => {
      // No Pong: the link is dead even if the socket does not know yet.
      const ws = this._live;
      this._log('keepalive timeout');
      try { if (ws) ws.close(4900, 'keepalive timeout'); } catch (e) { /* ignore */ }
      this._closed({ code: CloseCodes.KEEPALIVE_TIMEOUT, reason: 'keepalive timeout',
        wasClean: false, local: true });
    }, this.options.keepaliveTimeout);
  },

  // The socket is gone (closed by either side, or given up on). Myxi's
  // order: SocketDisconnected (if it was connected) and SocketClosed run
  // first, with the state as it was; then the state is reset and, unless a
  // callback called disconnect(), a reconnect is scheduled.
  _closed(info) {
    const ws = this._live;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
    }
    this._live = null;
    this._stopKeepalive();
    this._stopAuthRetry();
    for (const [tag, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new MyxiError('Disconnected', `${p.action}: the connection closed (${info.code})`));
      this._pending.delete(tag);
    }
    const wasConnected = this.connected;
    if (wasConnected && Date.now() - this._openedAt >= this.options.stableAfter) this.attempts = 0;
    const plan = this._reconnectPlan(info);
    this.lastClose = { ...info, willReconnect: plan.delay !== null, delay: plan.delay, why: plan.why };
    this._log('closed', this.lastClose);
    if (wasConnected) this._runCallbacks('SocketDisconnected', this.lastClose);
    this._runCallbacks('SocketClosed', this.lastClose);
    this.connected = false;
    this.authenticated = false;
    this._markAllSubscriptionsAsUnsubscribed();
    if (plan.delay !== null && this.reconnect && !this._live) {
      this.attempts += 1;
      this._runCallbacks('SocketReconnecting', { attempt: this.attempts, delay: plan.delay, code: info.code });
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.connect();
      }, plan.delay);
    }
  },

  _reconnectPlan(info) {
    if (!this.reconnect) return { delay: null, why: 'disconnect() was called' };
    if (this.authFailed) {
      const p = this.authFailed.payload;
      return { delay: null, why: `the token was refused (${p && p.error})` };
    }
    let delay = this._backoff(this.attempts);
    if (info.code === CloseCodes.SLOW_CONSUMER || info.code === CloseCodes.POLICY) {
      // Reconnecting at once would only repeat it: back off for longer.
      delay = Math.max(delay, this.options.slowDelay);
    }
    return { delay, why: '' };
  },
};

// ------------------------------------------------------------ SSE transport
//
// For networks whose proxies break WebSocket: a stand-in for the socket the
// Connection drives (onopen, onmessage, onclose, send, close) over myxid's
// EventSource endpoint, so the page's API and the Connection's logic stay
// the same. An SSE stream cannot carry actions, so they are played out:
// Authenticate and every Subscribe/Unsubscribe (re)open the stream with the
// token and the subscriptions in the query, each resumed after the last
// position received; Ping is answered here while the stream is alive (the
// server's keepalive comments keep it so). It reads the stream with fetch()
// rather than EventSource, which cannot tell a refused token (HTTP 401 and
// its JSON body) from a network error, nor deliver events by any name.

function SseSocket(conn, url) {
  this._conn = conn;
  this.url = url;
  this.readyState = 0;
  this.onopen = this.onmessage = this.onclose = this.onerror = null;
  this._token = null;
  this._authTag = null;
  this._wanted = [];           // [{exchange, routing_key, history}] in query order
  this._streamed = new Set();  // keys whose Subscribed this socket already passed on
  this._welcomed = false;
  this._authed = false;
  this._abort = null;          // the open request's AbortController
  this._openTimer = null;
  this._lastByteAt = Date.now();
  setTimeout(() => {
    if (this.readyState !== 0) return;
    this.readyState = 1;
    if (this.onopen) this.onopen({});
  }, 0);
}

SseSocket.prototype = {
  send(text) {
    if (this.readyState !== 1) throw new Error('myxid: SSE stream not open');
    const { action, tag, payload } = JSON.parse(text);
    const p = payload || {};
    if (action === 'Authenticate') {
      this._token = p.session_id;
      this._authTag = tag;
      this._authed = false;
      this._reopen();
    } else if (action === 'Subscribe') {
      const k = Subscription.keyFor(p.exchange, p.routing_key);
      if (!this._wanted.some((w) => Subscription.keyFor(w.exchange, w.routing_key) === k)) {
        this._wanted.push({ exchange: p.exchange, routing_key: p.routing_key, history: p.history });
        this._reopen();
      } else if (this._streamed.has(k)) {
        this._deliver({ event: 'Error', tag, payload: { error: 'AlreadySubscribed', exchange: p.exchange, routing_key: p.routing_key } });
      }
    } else if (action === 'Unsubscribe') {
      const k = Subscription.keyFor(p.exchange, p.routing_key);
      this._wanted = this._wanted.filter((w) => Subscription.keyFor(w.exchange, w.routing_key) !== k);
      this._streamed.delete(k);
      this._reopen();
      this._deliver({ event: 'Unsubscribed', tag, payload: { exchange_name: p.exchange, routing_key: p.routing_key } });
    } else if (action === 'Ping') {
      const o = this._conn.options;
      if (this._abort && Date.now() - this._lastByteAt < o.keepalive + o.keepaliveTimeout) {
        this._deliver({ event: 'Pong', tag, payload: {} });
      }
    } else {
      this._deliver({ event: 'Error', tag, payload: { error: 'NotSupportedOverSse', action } });
    }
  },

  close(code, reason) {
    if (this.readyState >= 2) return;
    this._stop();
    this.readyState = 3;
    setTimeout(() => this._fire(code || 1000, reason || '', true), 0);
  },

  _fire(code, reason, wasClean) {
    this.readyState = 3;
    if (this.onclose) this.onclose({ code, reason, wasClean });
  },

  _stop() {
    if (this._openTimer) clearTimeout(this._openTimer);
    this._openTimer = null;
    if (this._abort) this._abort.abort();
    this._abort = null;
  },

  _deliver(data) {
    setTimeout(() => {
      if (this.readyState === 1 && this.onmessage) this.onmessage({ data: JSON.stringify(data) });
    }, 0);
  },

  // Actions of one tick (Authenticate, then every Subscribe that
  // isAuthenticated() sends) make one request, not one each.
  _reopen() {
    if (this._openTimer) return;
    this._openTimer = setTimeout(() => { this._openTimer = null; this._open(); }, 0);
  },

  _query() {
    const q = new URLSearchParams();
    if (this._token !== null && this._token !== undefined) q.set('token', this._token);
    const since = [];
    const history = [];
    for (const w of this._wanted) {
      q.append('subscribe', `${w.exchange}:${w.routing_key === undefined || w.routing_key === null ? '' : w.routing_key}`);
      const sub = this._conn._subscriptionFor(w.exchange, w.routing_key);
      since.push(sub && sub.epoch !== null && sub.position !== null ? `${sub.epoch}/${sub.position}` : '');
      history.push(!since[since.length - 1] && w.history > 0 ? String(w.history) : '');
    }
    if (since.some((x) => x)) q.set('last_event_id', since.join(','));
    if (history.some((x) => x)) q.set('history', history.join(','));
    return q.toString();
  },

  _open() {
    if (this.readyState !== 1) return;
    if (this._abort) this._abort.abort();
    const fetchImpl = this._conn.options.fetch || globalThis.fetch;
    const abort = new AbortController();
    this._abort = abort;
    this._lastByteAt = Date.now();
    fetchImpl(`${this.url}?${this._query()}`, {
      headers: { Accept: 'text/event-stream' }, signal: abort.signal, cache: 'no-store',
    }).then((res) => {
      if (this._abort !== abort) return null;
      if (!res.ok) return res.text().then((body) => this._refused(abort, res.status, body));
      return this._read(abort, res.body.getReader());
    }).catch((e) => {
      if (this._abort === abort) this._lost(`SSE request failed: ${e && e.message}`);
    });
  },

  // A refusal in HTTP terms becomes the Error event a WebSocket would have
  // had; a subscription refused is dropped and the rest are asked again.
  _refused(abort, status, body) {
    this._abort = null;
    let p = {};
    try { p = JSON.parse(body) || {}; } catch (e) { /* not JSON */ }
    if (status === 401 || status === 403) {
      const refusedSub = p.exchange !== undefined &&
        this._wanted.some((w) => w.exchange === p.exchange && String(w.routing_key) === String(p.routing_key));
      if (refusedSub) {
        this._wanted = this._wanted.filter((w) => !(w.exchange === p.exchange && String(w.routing_key) === String(p.routing_key)));
        this._deliver({ event: 'Error', payload: p });
        if (this._wanted.length) this._reopen();
        return;
      }
      if (!this._authed) {
        this._deliver({ event: 'Error', tag: this._authTag, payload: p.error ? p : { error: 'InvalidAuthentication' } });
        return;
      }
    }
    this._lost(`SSE request refused: HTTP ${status} ${p.error || ''}`.trim());
  },

  _lost(why) {
    this._stop();
    if (this.readyState === 1) this._fire(1006, why, false);
  },

  _read(abort, reader) {
    const decoder = new TextDecoder();
    let buf = '';
    const pump = () => reader.read().then(({ done, value }) => {
      if (this._abort !== abort) return null;
      if (done) return this._lost('SSE stream ended');
      this._lastByteAt = Date.now();
      buf += decoder.decode(value, { stream: true });
      let end;
      while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + (buf[end] === '\r' ? 4 : 2));
        this._block(block);
        if (this._abort !== abort) return null;
      }
      return pump();
    });
    return pump();
  },

  // One SSE message: only its data (the JSON a WebSocket gets) matters.
  _block(block) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(l[5] === ' ' ? 6 : 5)).join('\n');
    if (!data) return;
    let ev;
    try { ev = JSON.parse(data); } catch (e) { return; }
    const p = ev.payload || {};
    if (ev.event === 'Welcome') {
      if (this._welcomed) return;
      this._welcomed = true;
    } else if (ev.event === 'Authenticated') {
      if (this._authed) return;
      this._authed = true;
      ev.tag = this._authTag;
    } else if (ev.event === 'Subscribed') {
      const k = Subscription.keyFor(p.exchange, p.routing_key);
      if (this._streamed.has(k)) return;   // the stream was reopened for another key
      this._streamed.add(k);
    }
    if (this.onmessage) this.onmessage({ data: JSON.stringify(ev) });
  },
};

export const Myxi = { Connection, Subscription, MyxiError, CloseCodes, version: '0.2.0' };
export default Myxi;
