#!/bin/bash
# The Debian package path, end to end (run as root on Debian 12):
#   1. build myxid, myxid-plugin-pgsql, myxid-plugin-mysql and myxid-dev with
#      dpkg-buildpackage in a temporary copy of this tree (the work tree is
#      never touched);
#   2. install them with apt-get and check the installed layout;
#   3. check and start the daemon with the packaged configuration as the
#      unit would (user myxid; no systemd here: systemd-analyze verify checks
#      the unit when it is available), and ask /healthz;
#   4. build the example plugin out of tree from myxid-dev's examples with
#      pkg-config, load it from a test configuration and authenticate
#      through it with a real WebSocket client;
#   5. stop the daemon and purge the packages.
# Prints one line per check and "N passed, N failed"; exits 1 on any
# failure. MYXI_PORT chooses the port (default 5005, the packaged one).
# Running it again is safe: leftovers of an interrupted run are purged first.
set -u
cd "$(dirname "$0")/.." || exit 1
top=$PWD
port=${MYXI_PORT:-5005}
packages="myxid myxid-dev myxid-plugin-pgsql myxid-plugin-mysql"
pass=0
fail=0
daemon_pid=
tmp=
user_created=no

ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# check DESCRIPTION COMMAND...: one check, passed when COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
summary() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }
# Installed, or anything short of purged (config files, half-installed).
any_installed() {
	local p st
	for p in $packages; do
		st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
		[ -n "$st" ] && [ "$st" != not-installed ] && return 0
	done
	return 1
}
# py_checks ARGS... <<'PY': run a Python client that prints "ok: ..." and
# "FAIL: ..." lines, and count them.
py_checks() {
	local out rc n
	out=$(/usr/bin/python3 - "$@" 2>&1)
	rc=$?
	[ -z "$out" ] || echo "$out"
	n=$(grep -c '^ok:' <<<"$out")
	pass=$((pass + n))
	n=$(grep -c '^FAIL:' <<<"$out")
	fail=$((fail + n))
	[ "$rc" -eq 0 ] || [ "$n" -ne 0 ] || bad "the client exited with status $rc"
}
purge() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 purge -y -q $packages >"$1" 2>&1
}

stop_daemon() {
	local _
	[ -n "$daemon_pid" ] || return 0
	kill -TERM "$daemon_pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
	daemon_status=$?
	daemon_pid=
	return 0
}

cleanup() {
	stop_daemon
	notify_stop
	if any_installed; then
		purge /dev/null || echo "warning: could not purge $packages" >&2
	fi
	if [ "$user_created" = yes ] && getent passwd myxid >/dev/null; then
		userdel myxid 2>/dev/null
		getent group myxid >/dev/null && groupdel myxid 2>/dev/null
	fi
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if [ "$(id -u)" != 0 ]; then
	bad "run as root: the test installs and purges packages"
	summary
	exit 1
fi

# What the test itself needs (the build dependencies come from
# debian/control below).
missing=
for p in dpkg-dev debhelper build-essential python3 python3-websockets; do
	installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $missing >/dev/null ||
		{ bad "install$missing"; summary; exit 1; }
fi

# Leftovers of an interrupted run: our packages (purged), and the user the
# package created (removed at the end when nothing else installed it).
if any_installed; then
	echo "purging leftovers: $packages"
	purge /dev/null
fi
if ! getent passwd myxid >/dev/null; then
	user_created=yes
elif getent passwd myxid | cut -d: -f5 | cut -d, -f1 | grep -qx 'myxid push daemon'; then
	user_created=yes        # left by a previous run of this test
fi

# ------------------------------------------------------------ 1. build
tmp=$(mktemp -d /tmp/myxid-package.XXXXXX)
chmod 0755 "$tmp"           # the daemon reads the test plugin as user myxid
src=$tmp/build/myxid
mkdir -p "$src"
# The tracked and the new files as they are now, without build products.
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$top" ls-files -z -c -o --exclude-standard |
		(cd "$top" && while IFS= read -r -d '' f; do
			[ -e "$f" ] && printf '%s\0' "$f"
		done) |
		tar -C "$top" --null -T - -cf - | tar -C "$src" -xf -
else
	cp -a "$top/." "$src/"
	[ -f "$src/Makefile" ] && make -C "$src" distclean >/dev/null 2>&1
fi
rm -f "$src/myxid.service" "$src/clients/myxid-push"    # not in .gitignore

if ! (cd "$src" && dpkg-checkbuilddeps) >/dev/null 2>&1; then
	echo "installing the build dependencies"
	(cd "$src" && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 build-dep -y -q \
		--no-install-recommends ./) >"$tmp/build-dep.log" 2>&1 ||
		{ tail -n 20 "$tmp/build-dep.log"; bad "build dependencies"; summary; exit 1; }
fi

started=$(date +%s)
# The build runs the unit tests (debian/rules); DEB_BUILD_OPTIONS=nocheck
# in the environment skips them. A hung test must not hang CI.
if (cd "$src" && timeout 900 dpkg-buildpackage -us -uc -b -jauto) >"$tmp/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - started)) s)"
	units=$(grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR): ' "$tmp/build.log" | tr -s ' ' | paste -sd ' ')
	echo "note: unit tests run by the build (dh_auto_test): ${units:-none (nocheck?)}"
else
	tail -n 60 "$tmp/build.log"
	bad "dpkg-buildpackage -us -uc -b"
	summary
	exit 1
fi
debs=
for p in $packages; do
	f=$(ls "$tmp/build/${p}_"*.deb 2>/dev/null | head -n 1)
	check "package $p built" test -n "$f"
	[ -z "$f" ] || debs="$debs $f"
done
if dpkg-deb -c "$(ls "$tmp"/build/myxid_*.deb)" | grep -E 'plugins/(pgsql|mysql)\.so$' >/dev/null; then
	bad "myxid does not ship the SQL plugins"
else
	ok "myxid does not ship the SQL plugins"
fi

# ------------------------------------------------------------ 2. install
if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $debs \
	>"$tmp/install.log" 2>&1; then
	ok "apt-get install$(for d in $debs; do printf ' ./%s' "${d##*/}"; done)"
else
	tail -n 30 "$tmp/install.log"
	bad "apt-get install"
	summary
	exit 1
fi

plugindir=$(pkg-config --variable=plugindir myxid-plugin 2>/dev/null)
check "pkg-config myxid-plugin: plugindir=$plugindir" test -n "$plugindir"
for f in /usr/sbin/myxid /usr/bin/myxid-push; do
	check "$f" test -x "$f"
done
for f in "$plugindir"/auth_static.so "$plugindir"/policy_static.so "$plugindir"/jwt.so \
	"$plugindir"/pgsql.so "$plugindir"/mysql.so \
	/usr/include/myxid/plugin.h /usr/share/myxid/myxid.conf.example \
	/lib/systemd/system/myxid.service \
	/usr/share/man/man8/myxid.8.gz /usr/share/man/man5/myxid.conf.5.gz \
	/usr/share/man/man7/myxid-plugin.7.gz /usr/share/man/man1/myxid-push.1.gz \
	/usr/share/man/man7/myxid-control.7.gz /usr/share/man/man1/myxid-ctl.1.gz /usr/bin/myxid-ctl \
	/usr/share/doc/myxid-dev/examples/auth_example.c \
	/usr/share/doc/myxid-dev/examples/Makefile.example \
	/usr/share/doc/myxid-dev/examples/README.md; do
	check "$f" test -f "$f"
done
check "no .la files" test -z "$(dpkg -L $packages | grep '\.la$')"
check "the plugins come from their packages" \
	test "$(dpkg -S "$plugindir/pgsql.so" "$plugindir/mysql.so" 2>/dev/null | cut -d: -f1 | tr '\n' ' ')" \
	= "myxid-plugin-pgsql myxid-plugin-mysql "
for f in /etc/myxid/myxid.conf /etc/myxid/tokens; do
	check "$f: a conffile" sh -c "dpkg-query -W -f='\${Conffiles}\n' myxid | grep -q ' $f '"
	check "$f: root:myxid 0640" test "$(stat -c '%U:%G %a' "$f" 2>/dev/null)" = "root:myxid 640"
done
check "/etc/myxid/myxid.conf is the shipped production file" \
	cmp -s /etc/myxid/myxid.conf /usr/share/myxid/myxid.conf.example
check "no demo token or key in /etc/myxid" \
	sh -c '! grep -Eq "^[^#]*(demo-|publish_key)" /etc/myxid/myxid.conf /etc/myxid/tokens'
check "system user myxid" getent passwd myxid
check "myxid -V" sh -c '/usr/sbin/myxid -V | grep -q "^myxid "'
# The man pages render without a warning.
for m in myxid.8 myxid.conf.5 myxid-plugin.7 myxid-control.7 myxid-push.1 myxid-ctl.1; do
	s=${m##*.}
	out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \
		"/usr/share/man/man$s/$m.gz" 2>&1 >/dev/null)
	check "man page $m renders cleanly" test -z "$out"
	[ -z "$out" ] || echo "$out" | head -n 5
done
# The unit: the paths substituted, and systemd's own check.
unit=/lib/systemd/system/myxid.service
check "unit: Type=notify" grep -qx 'Type=notify' "$unit"
check "unit: ExecStartPre=myxid -t" \
	grep -qx 'ExecStartPre=/usr/sbin/myxid -t -c /etc/myxid/myxid.conf' "$unit"
check "unit: no @variable@ left" sh -c "! grep -q '@[a-z]*@' $unit"
if command -v systemd-analyze >/dev/null; then
	out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$unit" 2>&1)
	check "systemd-analyze verify myxid.service" test -z "$out"
	[ -z "$out" ] || echo "$out" | head -n 10
else
	echo "note: systemd-analyze is not installed: the unit is not verified"
fi

# ------------------------------------------------------------ 3. run
as_myxid() { setpriv --reuid=myxid --regid=myxid --init-groups -- "$@"; }

# "check ... is free": myxid must not answer a daemon left from elsewhere.
port_free() {
	! python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
		"$port" 2>/dev/null
}
# What systemd would hear on NOTIFY_SOCKET (Type=notify), one line each.
notify_pid=
notify_listen() {
	rm -f "$tmp/notify.sock" "$tmp/notify.out"
	python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a") as out:
    print("listening", file=out, flush=True)
    while True:
        print(s.recv(4096).decode(errors="replace").replace("\n", " "), file=out, flush=True)
' "$tmp/notify.sock" "$tmp/notify.out" &
	notify_pid=$!
	for _ in $(seq 50); do
		grep -q listening "$tmp/notify.out" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
notify_stop() {
	[ -n "$notify_pid" ] && kill "$notify_pid" 2>/dev/null && wait "$notify_pid" 2>/dev/null
	notify_pid=
}
# notify_seen PATTERN: a line matching PATTERN arrives within 5 s.
notify_seen() {
	for _ in $(seq 50); do
		grep -Eq "$1" "$tmp/notify.out" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# notify_after A B: a line matching B follows one matching A, within 5 s.
notify_after() {
	for _ in $(seq 50); do
		awk -v a="$1" -v b="$2" '$0 ~ a { seen = 1; next } seen && $0 ~ b { found = 1 }
			END { exit !found }' "$tmp/notify.out" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
start_daemon() {     # CONFIG LOG [NOTIFY_SOCKET]
	if ! port_free; then
		bad "port $port is in use (set MYXI_PORT)"
		return 1
	fi
	# setpriv execs: $! is the daemon itself, as MAINPID would be.
	MYXI_PORT=$port NOTIFY_SOCKET=${3:-} setpriv --reuid=myxid --regid=myxid --init-groups \
		-- /usr/sbin/myxid -c "$1" >"$2" 2>&1 &
	daemon_pid=$!
	python3 - "$port" <<'PY'
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/healthz"
for _ in range(100):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            body = json.load(r)
            sys.exit(0 if r.status == 200 and body.get("status") == "ok" else 1)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

out=$(as_myxid /usr/sbin/myxid -t -c /etc/myxid/myxid.conf 2>&1)
check "myxid -t -c /etc/myxid/myxid.conf (as user myxid)" test $? -eq 0
echo "$out" | sed 's/^/    /'

notify_listen || bad "a NOTIFY_SOCKET listener"
if start_daemon /etc/myxid/myxid.conf "$tmp/daemon.log" "$tmp/notify.sock"; then
	ok "packaged config: started as myxid, GET /healthz on 127.0.0.1:$port answers ok"
	check "Type=notify: READY=1 sent once listening" notify_seen 'READY=1'
	kill -HUP "$daemon_pid"
	check "SIGHUP: RELOADING=1, then READY=1" notify_after 'RELOADING=1' 'READY=1'
	# Safe by default: no HTTP publishing, no token accepted.
	py_checks "$port" <<'PY'
import asyncio, json, sys, urllib.error, urllib.request
import websockets
port = sys.argv[1]
req = urllib.request.Request(f"http://127.0.0.1:{port}/publish", method="POST",
    data=b'{"exchange":"x","routing_key":"k","event":"E","payload":{}}',
    headers={"Authorization": "Bearer demo-publish-key", "Content-Type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=5)
    code = 200
except urllib.error.HTTPError as e:
    code = e.code
print(("ok" if code == 403 else "FAIL") + f": packaged config: POST /publish is disabled ({code})")
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"action": "Authenticate", "tag": "a",
                                  "payload": {"session_id": "demo-alice"}}))
        r = json.loads(await asyncio.wait_for(ws.recv(), 5))
        good = r.get("event") == "Error" and r["payload"].get("error") == "InvalidAuthentication"
        print(("ok" if good else "FAIL") + f": packaged config: a demo token is refused ({r})")
asyncio.run(main())
PY
else
	bad "packaged config: GET /healthz on 127.0.0.1:$port"
	tail -n 20 "$tmp/daemon.log"
fi
stop_daemon
check "SIGTERM: exit status 0" test "${daemon_status:-1}" -eq 0
check "SIGTERM: STOPPING=1" notify_seen 'STOPPING=1'
notify_stop
check "no error logged" sh -c "! grep -E ' (error|warning):' '$tmp/daemon.log'"

# ------------------------------------------------------------ 4. plugin
plug=$tmp/plugin
mkdir -p "$plug"
cp /usr/share/doc/myxid-dev/examples/* "$plug/"
# MYXID_INCLUDE points nowhere: only pkg-config can find the header.
if (cd "$plug" && make -f Makefile.example MYXID_INCLUDE=/nonexistent) >"$tmp/plugin.log" 2>&1; then
	ok "example plugin built out of tree with pkg-config myxid-plugin"
else
	cat "$tmp/plugin.log"
	bad "example plugin built out of tree with pkg-config myxid-plugin"
fi
(cd "$plug" && make -f Makefile.example install DESTDIR="$tmp/dest") >>"$tmp/plugin.log" 2>&1
check "make -f Makefile.example install: into the plugin directory" \
	test -f "$tmp/dest$plugindir/auth_example.so"

cat >"$tmp/plugin.conf" <<EOF
listen 127.0.0.1:$port
publish_key test-publish-key
auth $plug/auth_example.so {
    delay_ms 10
}
auth static {
    tokens_file /etc/myxid/tokens
}
exchange user {
    policy static {
        allow key user.{user_id}
    }
}
EOF
chmod 0644 "$tmp/plugin.conf"
out=$(as_myxid /usr/sbin/myxid -t -c "$tmp/plugin.conf" 2>&1)
check "myxid -t loads the out-of-tree plugin" test $? -eq 0
echo "$out" | sed 's/^/    /'

if start_daemon "$tmp/plugin.conf" "$tmp/daemon-plugin.log"; then
	ok "started with the out-of-tree plugin"
	py_checks "$port" <<'PY'
import asyncio, json, sys, urllib.request
import websockets
port = sys.argv[1]
failed = False
def check(good, what):
    global failed
    failed |= not good
    print(("ok" if good else "FAIL") + ": plugin: " + what)
async def reply(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 5))
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
        r = await reply(ws)
        check(r.get("event") == "Welcome", "Welcome")
        await ws.send(json.dumps({"action": "Authenticate", "tag": "a",
                                  "payload": {"session_id": "example-42"}}))
        r = await reply(ws)
        check(r == {"event": "Authenticated", "tag": "a",
                    "payload": {"user_id": "42", "user_type": "Example"}},
              f"Authenticate example-42 -> Authenticated user 42 ({r})")
        await ws.send(json.dumps({"action": "Subscribe", "tag": "s",
            "payload": {"exchange": "user", "routing_key": "user.42"}}))
        r = await reply(ws)
        check(r.get("event") == "Subscribed", f"Subscribe user.42 -> Subscribed ({r})")
        await ws.send(json.dumps({"action": "Subscribe", "tag": "t",
            "payload": {"exchange": "user", "routing_key": "user.43"}}))
        r = await reply(ws)
        check(r.get("event") == "Error" and r["payload"].get("error") == "SubscriptionDenied",
              f"Subscribe user.43 -> SubscriptionDenied ({r})")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/publish", method="POST",
            data=json.dumps({"exchange": "user", "routing_key": "user.42",
                             "event": "Hello", "payload": {"n": 1}}).encode(),
            headers={"Authorization": "Bearer test-publish-key",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = json.load(resp)
        r = await reply(ws)
        check(body.get("delivered") == 1 and r.get("event") == "Hello"
              and r.get("payload") == {"n": 1},
              f"POST /publish -> delivered to the socket ({r})")
    async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
        await reply(ws)
        await ws.send(json.dumps({"action": "Authenticate", "tag": "b",
                                  "payload": {"session_id": "example-abc"}}))
        r = await reply(ws)
        check(r.get("event") == "Error" and r["payload"].get("error") == "InvalidAuthentication",
              f"Authenticate example-abc -> InvalidAuthentication ({r})")
try:
    asyncio.run(main())
except Exception as e:
    check(False, f"client: {e!r}")
sys.exit(1 if failed else 0)
PY
else
	bad "started with the out-of-tree plugin: GET /healthz"
	tail -n 20 "$tmp/daemon-plugin.log"
fi
stop_daemon
check "SIGTERM: exit status 0" test "${daemon_status:-1}" -eq 0
check "the daemon logged the plugin" grep -q 'auth_example' "$tmp/daemon-plugin.log"

# ------------------------------------------------------------ 5. purge
if purge "$tmp/purge.log"; then
	ok "apt-get purge $packages"
else
	tail -n 20 "$tmp/purge.log"
	bad "apt-get purge $packages"
fi
check "nothing left installed" sh -c "! dpkg -l $packages 2>/dev/null | grep -q '^[ihrc][^n]'"
check "/etc/myxid removed" test ! -e /etc/myxid
check "no statoverride left" sh -c '! dpkg-statoverride --list | grep -q /etc/myxid/'
check "no unit enabled" test ! -e /etc/systemd/system/multi-user.target.wants/myxid.service
# Debian keeps system users on purge; this test removes the one it made.
if [ "$user_created" = yes ]; then
	check "user myxid (made by this test) removed" userdel myxid
	getent group myxid >/dev/null && groupdel myxid
fi

summary
