// A typed page, checked with `tsc --noEmit` against the packed myxid-client
// (tests/integration/js_package.mjs). It uses Myxi's API and myxid's
// additions the way the README shows them.
import Myxi, { Connection, Subscription, MyxiError, CloseCodes, type CloseInfo, type MyxiEvent } from 'myxid-client';

// In Node, `ws`; any WebSocket constructor will do.
declare const WebSocket: new (url: string) => object;
const conn = new Myxi.Connection('ws://127.0.0.1:5005/', { WebSocket, keepalive: 0 });
const same: Connection = Connection('ws://127.0.0.1:5005/', { autoConnect: false });

// Myxi's API.
const cb = conn.authentication(function authenticate() {
  const sent: boolean = this.sendAction('Authenticate', { session_id: 'demo-alice' });
  void sent;
});
cb.call(conn);
const count: number = conn.on('Authenticated', function onAuthenticated(payload) {
  const subscribed: Array<boolean | undefined> = this.isAuthenticated();
  void subscribed;
  void payload;
});
const sub: Subscription = conn.subscribe('deployment', 'd1', { history: 50 });
sub.on('SubscriptionGap', function onGap() {
  const at: number | null = this.position;
  void at;
});
const key: string = Subscription.keyFor('deployment', 42);
sub.on('LogLine', function onLine(payload, tag) {
  const s: Subscription = this;
  void s; void payload; void tag;
});
const stored = sub.addMessageHandler('logWindow', function logWindow(subscription, event, payload) {
  const where: HTMLElementLike = this;
  where.append(`${subscription.key()} ${event} ${String(payload.line)}`);
}, { append(text: string) { void text; } } as HTMLElementLike);
const removed: boolean = sub.removeMessageHandler('logWindow');
const unsent: boolean = sub.unsubscribe();
conn.on('SocketClosed', (info: CloseInfo) => {
  if (info.code === CloseCodes.SLOW_CONSUMER && info.willReconnect) console.log(info.delay);
});
conn.on('SocketMessageReceived', (data: MyxiEvent) => console.log(data.event, data.mq?.rk));

// myxid's additions.
conn.authenticate(async () => 'demo-alice');
sub.whenSubscribed().then((s: Subscription) => s.subscribed, (e: MyxiError) => e.code);
conn.request<{ time: number }>('Ping').then((reply) => reply.payload.time.toFixed(0));
const closed: boolean = conn.off('SocketClosed', () => {});
same.disconnect();

interface HTMLElementLike { append(text: string): void }
void [count, key, stored.param, removed, unsent, closed];
