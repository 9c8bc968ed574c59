// Must NOT type-check (js_package.mjs asserts tsc rejects it): Myxi's on()
// returns a number, and a subscription callback's `this` is the subscription.
import Myxi from 'myxid-client';

const conn = new Myxi.Connection('ws://127.0.0.1:5005/');
const chained: string = conn.on('Welcome', () => {});
conn.subscribe('deployment', 'd1').on('LogLine', function onLine() {
  const c: typeof conn = this;
  void c;
});
void chained;
