#!/bin/sh
# Install what myxid needs from Debian 12's archive (run as root).
#   scripts/install-deps.sh build   compilers, autotools, libraries
#   scripts/install-deps.sh demo    + what the demo's printed instructions use
#                                   (python3-websockets, curl)
#   scripts/install-deps.sh test    + the clients and tools the tests use
# Packages already present are left alone, so a second run is quick.
set -eu

build="build-essential autoconf automake libtool pkg-config
 libevent-dev libjson-c-dev libssl-dev librabbitmq-dev libpq-dev libmariadb-dev
 libcurl4-openssl-dev zlib1g-dev"
demo="$build python3 python3-websockets curl"
# The tests' services, clients and tools; nginx with nchan is the peer the
# benchmarks measure myxid against; clang-14 and libFuzzer build the fuzz
# targets and the sanitizer build; valgrind checks for leaks.
test="$build python3 python3-websockets curl
 rabbitmq-server ruby ruby-bunny python3-pika amqp-tools
 python3-jwt python3-cryptography
 postgresql mariadb-server
 dpkg-dev debhelper chromium
 nginx-light libnginx-mod-nchan
 clang-14 libfuzzer-14-dev libclang-rt-14-dev valgrind"

case "${1:-build}" in
build) want=$build ;;
demo) want=$demo ;;
test) want=$test ;;
*) echo "usage: $0 build|demo|test" >&2; exit 2 ;;
esac

missing=""
# Node.js may come from elsewhere than Debian (its npm then conflicts with
# Debian's nodejs): only install Debian's when there is none at all.
if [ "${1:-build}" = test ] && ! { command -v node && command -v npm; } >/dev/null; then
	want="$want nodejs npm"
fi
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (run this as root to install them)" >&2
		exit 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
