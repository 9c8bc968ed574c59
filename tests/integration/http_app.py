#!/usr/bin/python3
"""
http_app: the application the http plugin's tests talk to (Python's
http.server, threaded, HTTP/1.1 keep-alive). Run as a subprocess:

    http_app.py --port P [--cert C --key K] [--keepalive-timeout S]

It prints "READY <port>" once it listens on 127.0.0.1:P.

Endpoints the plugin calls:
  POST /auth    {"action":"authenticate","token":...}: the answer comes from
                the token table (see TOKEN ANSWERS); unknown tokens get 403.
  POST /policy  {"action":"subscribe",...}: 200 when "exchange/routing_key"
                is in permissions[user_id] ("" for anonymous), else 403.
                Routing keys "status-NNN" answer NNN, "slow-..." wait for
                the "delay" setting first.
Control endpoints (the tests' side; not counted as connections):
  POST /_config  merge a JSON object into the settings: tokens, permissions,
                 delay (seconds, every /auth and /policy), status (answer
                 every /auth and /policy with this status)
  GET  /_stats   {"connections": TCP connections that carried /auth or
                 /policy, "requests": their count, "bodies": the last 50
                 request bodies (parsed), "headers": the last 50 request
                 header dicts}
  POST /_reset   zero the counters and forget bodies and headers; open
                 connections count again when they carry a request

TOKEN ANSWERS: tokens[token] is one of
  {"json": OBJ}                 200 with OBJ
  {"status": N, "raw": TEXT}    status N (default 200) with TEXT as the body
  {"status": N}                 status N, empty body
  {"redirect": URL}             302 to URL
  {"huge": N}                   200 with N bytes of JSON-ish text
  {"chunked": [TEXT, ...]}      200, chunked, one chunk per piece
  {"close": true}               read the request, close without answering
  {"no_length": TEXT}           200, no Content-Length, body to the close
  and any of them may add "delay": seconds.
"""
import argparse
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"tokens": {}, "permissions": {}, "delay": 0.0, "status": None}
STATS = {"connections": 0, "requests": 0, "bodies": [], "headers": [], "generation": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http_app"
    keepalive_timeout = None

    def setup(self):
        self.timeout = Handler.keepalive_timeout
        super().setup()
        # Headers and body are written separately: without this, Nagle
        # and the client's delayed ACK cost 40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.counted = -1          # the STATS generation it was counted in

    def log_message(self, fmt, *args):
        pass

    # -- replies
    def reply(self, status, body=b"", ctype="application/json", extra=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def reply_json(self, status, obj):
        self.reply(status, json.dumps(obj))

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    # -- the application
    def count(self, body):
        with LOCK:
            if self.counted != STATS["generation"]:
                STATS["connections"] += 1
                self.counted = STATS["generation"]
            STATS["requests"] += 1
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {"unparsable": body.decode("latin-1")}
            STATS["bodies"] = (STATS["bodies"] + [parsed])[-50:]
            STATS["headers"] = (STATS["headers"] + [dict(self.headers.items())])[-50:]
            return parsed, dict(STATE)

    def do_POST(self):
        body = self.read_body()
        if self.path == "/_config":
            with LOCK:
                STATE.update(json.loads(body))
            return self.reply_json(200, {"ok": True})
        if self.path == "/_reset":
            with LOCK:
                STATS.update(connections=0, requests=0, bodies=[], headers=[],
                             generation=STATS["generation"] + 1)
            return self.reply_json(200, {"ok": True})
        if self.path not in ("/auth", "/policy"):
            return self.reply_json(404, {"error": "no such path"})
        doc, state = self.count(body)
        if state["delay"]:
            time.sleep(state["delay"])
        if state["status"]:
            return self.reply(state["status"], b"")
        if self.path == "/auth":
            return self.auth(doc, state)
        return self.policy(doc, state)

    def do_GET(self):
        if self.path == "/_stats":
            with LOCK:
                return self.reply_json(200, STATS)
        return self.reply_json(404, {"error": "no such path"})

    def auth(self, doc, state):
        answer = state["tokens"].get(doc.get("token"))
        if answer is None:
            return self.reply_json(403, {"error": "unknown token"})
        if answer.get("delay"):
            time.sleep(answer["delay"])
        if "json" in answer:
            return self.reply_json(200, answer["json"])
        if "redirect" in answer:
            return self.reply(302, b"", extra={"Location": answer["redirect"]})
        if "huge" in answer:
            return self.reply(200, b'{"user_id":"' + b"x" * answer["huge"] + b'"}')
        if "chunked" in answer:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in answer["chunked"]:
                data = piece.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return None
        if answer.get("close"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if "no_length" in answer:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer["no_length"].encode())
            self.close_connection = True
            return None
        return self.reply(answer.get("status", 200), answer.get("raw", ""))

    def policy(self, doc, state):
        key = str(doc.get("routing_key"))
        if key.startswith("status-"):
            return self.reply(int(key[7:]), b"")
        if key.startswith("slow-"):
            time.sleep(state.get("policy_delay", 0) or 0)
        user = doc.get("user") or {}
        allowed = state["permissions"].get(user.get("user_id", ""), [])
        if f"{doc.get('exchange')}/{key}" in allowed:
            return self.reply_json(200, {"ok": True})
        return self.reply_json(403, {"error": "denied"})


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # Peers that hang up (the tests do, on purpose) are not news.
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--keepalive-timeout", type=float)
    args = ap.parse_args()
    Handler.keepalive_timeout = args.keepalive_timeout
    server = Server(("127.0.0.1", args.port), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
