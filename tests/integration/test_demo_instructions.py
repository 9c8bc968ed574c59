#!/usr/bin/python3
"""
What scripts/demo.sh (the README's first command) prints is run as printed:
the page and client URLs answer, the "Try it" command (Python websockets'
interactive client, which the first command installs) with the lines it says
to type authenticates and subscribes, and the "Publish" curl command reaches
that client. Only the port changes (the demo's 5005 may be taken by a
parallel test), through MYXI_PORT as etc/myxid.conf allows.
"""
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import Daemon, SRCDIR, Suite, free_port

T = Suite()


def printed_message():
    """The text between cat <<'MSG' and MSG in scripts/demo.sh."""
    with open(os.path.join(SRCDIR, "scripts", "demo.sh")) as f:
        text = f.read()
    m = re.search(r"cat <<'MSG'\n(.*?)\nMSG\n", text, re.S)
    return m.group(1) if m else ""


def field(msg, name):
    """The lines of one "Name:  ..." entry, continuation lines included."""
    lines = msg.split("\n")
    out = []
    for i, line in enumerate(lines):
        if re.match(rf"\s+{name}:\s", line):
            out.append(line.split(":", 1)[1].strip())
            for more in lines[i + 1:]:
                if not more.strip() or re.match(r"\s+[A-Z][a-zA-Z ]*:\s", more):
                    break
                out.append(more.strip())
            break
    return out


@T.test(timeout=60)
async def demo_instructions_work():
    msg = printed_message()
    T.check("Try it:" in msg and "Publish:" in msg, "demo.sh prints Try it and Publish", msg)
    port = free_port()
    sub = lambda s: s.replace("5005", str(port))
    d = Daemon(start=False, env={"MYXI_PORT": str(port)}, name="myxid (etc/myxid.conf)")
    d.conf_path = os.path.join(SRCDIR, "etc", "myxid.conf")
    d.start(wait_port=port)

    for name, want in (("Open", b"<html"), ("Client", b"export")):
        url = sub(field(msg, name)[0].split()[0])
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
        T.check(resp.status == 200 and want in (body.lower() if name == "Open" else body),
                f"{name}: {url} answers", body[:80])

    try_it = field(msg, "Try it")
    command = sub(try_it[0])
    typed = [line for line in try_it[1:] if line.startswith("{")]
    T.eq(len(typed), 2, "Try it: two lines to type")
    T.check(command.startswith("/usr/bin/python3 -m websockets "), "Try it uses Debian's python3", command)
    client = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in typed:
        client.stdin.write(line.encode() + b"\n")
    client.stdin.flush()
    time.sleep(1.0)          # Authenticated and Subscribed come back

    publish = sub(" ".join(p.rstrip("\\").strip() for p in field(msg, "Publish")))
    out = subprocess.run(["sh", "-c", publish], capture_output=True, text=True, timeout=10)
    T.eq(out.stdout.strip(), '{"ok":true,"delivered":1}', "Publish: the curl command reaches the subscriber")
    time.sleep(0.5)
    try:
        seen = client.communicate(timeout=10)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        client.kill()
        seen = client.communicate()[0].decode(errors="replace")
    # The demo's exchange keeps history: Subscribed has its epoch and
    # offset, and events their position.
    for want in (r'\{"event":"Authenticated","tag":null,"payload":\{"user_id":"1"\}\}',
                 r'\{"event":"Subscribed","tag":null,"payload":\{"exchange":"deployment",'
                 r'"routing_key":"d1","epoch":"[0-9a-f]{16}","offset":0\}\}',
                 r'\{"event":"LogLine","payload":\{"line":"Deploying\.\.\."\},'
                 r'"mq":\{"e":"deployment","rk":"d1","o":1\}\}'):
        T.check(re.search(want, seen), f"Try it: the client prints {want[:44]}...", seen)
    d.stop()


if __name__ == "__main__":
    T.run()
