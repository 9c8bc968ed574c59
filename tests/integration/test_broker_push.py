#!/usr/bin/python3
"""
myxid-push, the CLI for shell scripts and deploy hooks, against a real
RabbitMQ: for the same arguments it publishes exactly what Myxi.push_event
publishes (compared on the wire with bunny_publish.rb, through a private
queue: body, exchange, routing key, properties), declares the exchange like
Myxi, takes the broker from -u or RABBITMQ_URL, reaches a subscribed
WebSocket through myxid, and fails cleanly (status, message, nothing
published) on bad arguments or an unreachable broker.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (MYXID_BIN, Client, Daemon, delivered, free_port,
                       prerequisite_missing, require)
from rabbitmq import (BrokerSuite, Tap, broker_config, bunny_publish,
                      require_rabbitmq, subscribe_ok, wait_bindings, wait_broker)

require()
require_rabbitmq(bunny=True)
MYXID_PUSH = os.environ.get("MYXID_PUSH") or os.path.normpath(
    os.path.join(os.path.dirname(MYXID_BIN), "..", "clients", "myxid-push"))
if not (os.path.isfile(MYXID_PUSH) and os.access(MYXID_PUSH, os.X_OK)):
    prerequisite_missing(f"myxid-push at {MYXID_PUSH} (build it; set MYXID_PUSH)")

from rabbitmq import start_node  # noqa: E402  (after the prerequisites)

T = BrokerSuite()
R = start_node()


def push(*args, env=None, timeout=30):
    full_env = dict(os.environ)
    full_env.pop("RABBITMQ_URL", None)
    full_env.update(env or {})
    return subprocess.run([MYXID_PUSH] + list(args), capture_output=True, timeout=timeout,
                          env=full_env, stdin=subprocess.DEVNULL)


def describe(msg):
    if msg is None:
        return None
    method, props, body = msg
    return {"exchange": method.exchange, "routing_key": method.routing_key, "body": body,
            "content_type": props.content_type, "delivery_mode": props.delivery_mode,
            "priority": props.priority, "headers": props.headers,
            "content_encoding": props.content_encoding, "type": props.type,
            "app_id": props.app_id, "message_id": props.message_id,
            "correlation_id": props.correlation_id, "reply_to": props.reply_to,
            "expiration": props.expiration, "timestamp": props.timestamp,
            "user_id": props.user_id}


CASES = [
    ("12", "WidgetQtyChanged", '{"quantity":5}', "an Integer-like key and a small payload"),
    ("widgets", "NoPayload", None, "no payload (push_event's default {})"),
    ("w-1", "Rich", json.dumps({"name": "Zoë ☃", "path": "/a/b", "list": [1, True, None, "x"],
                                "nested": {"t": "tab\there\nnl \"q\" \\ \u0001"},
                                "e": {}, "a": [], "n": -3, "big": 12345678901234567,
                                "f": 2.5, "g": 0.1}),
     "unicode (sent escaped), slashes, control characters, nesting, numbers"),
    ("x", "Spaced", '{ "a" : 1 ,\n "b" : [ 1 , 2 ] }', "a payload written with spaces"),
]


@T.test(timeout=120)
def same_as_bunny_on_the_wire():
    for key, event, payload, what in CASES:
        tap = Tap(R.url, "public", key)
        try:
            r = bunny_publish(R.url_vhost, "public", key, event, payload)
            T.check(r.returncode == 0, f"setup: bunny_publish.rb ({what})", r.stderr.decode())
            ref = describe(tap.get())
            args = ["-u", R.url, "public", key, event] + ([payload] if payload is not None else [])
            p = push(*args)
            T.check(p.returncode == 0, f"myxid-push exits 0 ({what})",
                    p.stdout.decode() + p.stderr.decode())
            got = describe(tap.get())
        finally:
            tap.close()
        if ref is None or got is None:
            T.check(False, f"both messages published ({what})", f"bunny {ref!r}\npush {got!r}")
            continue
        T.eq(got["body"], ref["body"], f"the same AMQP body as Myxi.push_event ({what})")
        T.eq((got["exchange"], got["routing_key"]), (ref["exchange"], ref["routing_key"]),
             f"the same exchange and routing key ({what})")
        props = [k for k in ref if k not in ("exchange", "routing_key", "body")]
        T.eq({k: got[k] for k in props}, {k: ref[k] for k in props},
             f"the same message properties as Bunny's publish ({what})")


@T.test(timeout=60)
async def reaches_a_subscriber():
    d = Daemon(broker_config(R.url), name="myxid")
    T.check(await wait_broker(d.port, "up", 30) is not None, "setup: myxid connects")
    async with Client(d.port, label="sub") as c:
        await subscribe_ok(c, "public", 77)
        T.check(await wait_bindings(R, {("public", "77")}), "setup: bound")
        p = push("-u", R.url, "public", "77", "Deployed", '{"version":"1.2.3"}')
        T.check(p.returncode == 0, "myxid-push exits 0", p.stderr.decode())
        await c.expect(delivered("Deployed", {"version": "1.2.3"}, "public", "77"),
                       "a socket subscribed through myxid receives it, with mq", timeout=5)
        await c.expect_nothing("once", 0.3)
    d.stop()


@T.test(timeout=60)
def url_and_exchange():
    tap = Tap(R.url, "public", "env")
    try:
        p = push("public", "env", "FromEnv", env={"RABBITMQ_URL": R.url})
        T.check(p.returncode == 0, "without -u, RABBITMQ_URL is used", p.stderr.decode())
        msg = describe(tap.get(5))
        T.eq(msg and msg["body"], b'{"event":"FromEnv","payload":{}}',
             "published there, payload {} by default")
        dead = f"amqp://guest:guest@127.0.0.1:{free_port()}"
        p = push("-u", R.url, "public", "env", "Flag", env={"RABBITMQ_URL": dead})
        T.check(p.returncode == 0, "-u wins over RABBITMQ_URL", p.stderr.decode())
        msg = describe(tap.get(5))
        T.eq(msg and msg["body"], b'{"event":"Flag","payload":{}}', "published with -u")
    finally:
        tap.close()

    p = push("-u", R.url, "fresh-exchange", "k", "E", "{}")
    T.check(p.returncode == 0, "publishing to an exchange nobody declared yet exits 0",
            p.stderr.decode())
    x = R.list_exchanges().get("fresh-exchange")
    T.check(x is not None and x["type"] == "direct" and x["durable"] is False,
            "it declares the exchange as Myxi does: direct, non-durable", repr(x))


@T.test(timeout=60)
def failures():
    tap = Tap(R.url, "public", "bad")
    try:
        p = push()
        T.check(p.returncode != 0 and re.search(rb"usage|EXCHANGE ROUTING_KEY", p.stderr, re.I),
                "no arguments: non-zero exit and a usage message on stderr", repr(p))
        p = push("-u", R.url, "public", "bad")
        T.check(p.returncode != 0, "too few arguments: non-zero exit", repr(p))
        p = push("-u", R.url, "public", "bad", "E", '{"a":')
        T.check(p.returncode != 0 and p.stderr.strip(),
                "a payload that is not JSON: non-zero exit, a message", repr(p))
        p = push("-u", R.url, "public", "bad", "E", '{"a":1}', "extra")
        T.check(p.returncode != 0, "too many arguments: non-zero exit", repr(p))
        T.eq(describe(tap.get(0.5)), None, "nothing was published by those")
        t0 = time.monotonic()
        p = push("-u", f"amqp://guest:guest@127.0.0.1:{free_port()}", "public", "bad", "E")
        T.check(p.returncode != 0 and p.stderr.strip(),
                "an unreachable broker: non-zero exit and a message", repr(p))
        T.check(time.monotonic() - t0 < 15, "... without hanging")
        p = push("-u", "amqp://guest:wrong@127.0.0.1:%d" % R.port, "public", "bad", "E")
        T.check(p.returncode != 0 and p.stderr.strip(),
                "a refused login: non-zero exit and a message", repr(p))
    finally:
        tap.close()


T.run()
