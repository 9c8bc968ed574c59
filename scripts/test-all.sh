#!/bin/bash
# The README's second command, and what CI runs (.ci/run): install what the
# tests need, build, run every test (unit and integration, with real
# clients), then make distcheck. Prints "N passed, N failed" at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/install-deps.sh test
(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
# The Node tests find `ws` here even when run from a distcheck tree.
export MYXID_NODE_MODULES="$top/tests/integration/node_modules"

./autogen.sh >/dev/null 2>&1
./configure --quiet
make -j2 --quiet

status=0
make -j2 check || status=$?

# One line per test point (TAP tests report each point, scripts one each).
pass=$(cat $(find . -name '*.trs') | grep -c '^:test-result: PASS' || true)
fail=$(cat $(find . -name '*.trs') | grep -Ec '^:test-result: (FAIL|XPASS|ERROR)' || true)
skip=$(cat $(find . -name '*.trs') | grep -c '^:test-result: SKIP' || true)
if [ "$status" -ne 0 ]; then
	for log in $(grep -l -E '^:test-result: (FAIL|ERROR)' $(find . -name '*.trs')); do
		echo "==== ${log%.trs}.log"
		tail -n 60 "${log%.trs}.log"
	done
fi

if [ "$status" -eq 0 ]; then
	make -j2 distcheck >distcheck.log 2>&1 || {
		status=$?
		tail -n 80 distcheck.log
		echo "make distcheck failed"
	}
	[ "$status" -eq 0 ] && echo "make distcheck: ok"
fi

# The Debian package: build it, install it, run it, build and load a plugin
# out of tree, purge it (scripts/test-package.sh prints its own count).
pkg_log=$(mktemp)
pkg_status=0
scripts/test-package.sh 2>&1 | tee "$pkg_log" || pkg_status=$?
pkg_pass=$(sed -n 's/^\([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$pkg_log" | tail -n 1)
pkg_fail=$(sed -n 's/^[0-9][0-9]* passed, \([0-9][0-9]*\) failed$/\1/p' "$pkg_log" | tail -n 1)
rm -f "$pkg_log"
pass=$((pass + ${pkg_pass:-0}))
fail=$((fail + ${pkg_fail:-1}))
if [ "$pkg_status" -ne 0 ]; then
	echo "package test failed"
	[ "${pkg_fail:-1}" -ne 0 ] || fail=$((fail + 1))
	status=1
fi

echo "$pass passed, $fail failed, $skip skipped"
# A skipped test is not a passed one: under CI every prerequisite is
# installed above, so a skip means something is wrong.
if [ "$skip" -ne 0 ] && [ "${CI:-}" = true ]; then
	echo "tests were skipped under CI" >&2
	status=1
fi
exit "$status"
