#!/bin/bash
# The README's second command, and what CI runs (.ci/run): install what the
# tests need, build, run every test (unit and integration, with real
# clients), then make distcheck; then the same tests in a build with
# AddressSanitizer and UBSan, a minute of fuzzing per target, and the
# integration tests under valgrind. Prints "N passed, N failed, N skipped"
# at the end, counting all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/install-deps.sh test
(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
# The Node tests find `ws` here even when run from a distcheck tree.
export MYXID_NODE_MODULES="$top/tests/integration/node_modules"
# Myxi's own JS client, for the compatibility test (beside the checkout, as
# CI lays out ../shared).
export MYXI_CLIENT_DIR="$top/../shared/reference/myxi-client"

# The sanitizer and fuzz builds of a previous run would be counted below.
rm -rf build-asan build-fuzz
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
	# A failed distcheck leaves its read-only tree behind.
	for d in myxid-*/; do
		[ ! -d "$d" ] || { chmod -R u+w "$d" && rm -rf "$d"; }
	done
	make -j2 distcheck >distcheck.log 2>&1 || {
		status=$?
		tail -n 40 distcheck.log
		# The suite runs again inside distcheck; what fails there counts,
		# with its log, like a failure above.
		dc_failed=$(grep -l -E '^:test-result: (FAIL|XPASS|ERROR)' \
			$(find myxid-*/ -name '*.trs' 2>/dev/null) /dev/null || true)
		for log in $dc_failed; do
			echo "==== distcheck: ${log%.trs}.log"
			tail -n 80 "${log%.trs}.log"
		done
		fail=$((fail + $(echo $dc_failed | wc -w)))
		[ -n "$dc_failed" ] || fail=$((fail + 1))
		echo "make distcheck failed"
	}
	[ "$status" -eq 0 ] && echo "make distcheck: ok"
fi

# The same tests once more with AddressSanitizer and UBSan built into the
# daemon, the plugins and the unit tests (a separate out-of-tree build).
# Any report fails its test: the unit programs abort, and the integration
# harness fails a test whose daemon's stderr holds a report. LeakSanitizer
# works in this container, so leaks count too. A 16 MB quarantine (not
# 256) keeps the memory-bound tests (RSS stays bounded under a slow
# consumer) meaningful while use-after-free is still caught.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:quarantine_size_mb=16
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# The tree above is configured in place, which an out-of-tree configure
# refuses; the release tarball is the pristine source to build from.
make dist >/dev/null 2>&1
tarball=$(ls -t myxid-*.tar.gz | head -n 1)
# pristine_build DIR CONFIGURE-ARGS...: unpack the tarball under DIR and
# configure it in DIR/build.
pristine_build() {
	local dir=$1
	shift
	rm -rf "$dir" && mkdir -p "$dir/build" &&
		tar -xzf "$tarball" -C "$dir" &&
		(cd "$dir/build" && ../"${tarball%.tar.gz}"/configure --quiet "$@")
}
san_status=0
{ pristine_build build-asan --enable-sanitizers &&
	make -C build-asan/build -j2 --quiet && make -C build-asan/build -j2 check
} >build-asan.log 2>&1 || san_status=$?
san_trs=$(find build-asan -name '*.trs')
if [ -n "$san_trs" ]; then
	pass=$((pass + $(cat $san_trs | grep -c '^:test-result: PASS' || true)))
	fail=$((fail + $(cat $san_trs | grep -Ec '^:test-result: (FAIL|XPASS|ERROR)' || true)))
	skip=$((skip + $(cat $san_trs | grep -c '^:test-result: SKIP' || true)))
fi
if [ "$san_status" -ne 0 ]; then
	status=1
	for log in $(grep -l -E '^:test-result: (FAIL|ERROR)' $san_trs /dev/null); do
		echo "==== sanitizers: ${log%.trs}.log"
		tail -n 60 "${log%.trs}.log"
	done
	[ -n "$san_trs" ] || { tail -n 40 build-asan.log; fail=$((fail + 1)); }
	echo "sanitizer build: failed"
else
	echo "sanitizer build: ok"
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

# Fuzzing: each libFuzzer target for about a minute from its seed corpus
# (clang-14 with libFuzzer; a separate build). A crash is one failure.
if pristine_build build-fuzz --enable-fuzz CC=clang-14 >build-fuzz.log 2>&1 &&
	scripts/fuzz.sh "${FUZZ_SECONDS:-60}" build-fuzz/build; then
	pass=$((pass + 1))
else
	fail=$((fail + 1)); status=1
	tail -n 20 build-fuzz.log
	echo "fuzzing: failed"
fi

# valgrind: the integration tests that are not bound to wall-clock time,
# with every daemon under memcheck (errors and definite/indirect leaks
# fail), in the first build.
vg_log=$(mktemp)
vg_status=0
scripts/valgrind.sh . 2>&1 | tee "$vg_log" || vg_status=$?
vg_pass=$(sed -n 's/^valgrind: \([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$vg_log" | tail -n 1)
vg_fail=$(sed -n 's/^valgrind: [0-9][0-9]* passed, \([0-9][0-9]*\) failed$/\1/p' "$vg_log" | tail -n 1)
rm -f "$vg_log"
pass=$((pass + ${vg_pass:-0}))
fail=$((fail + ${vg_fail:-1}))
if [ "$vg_status" -ne 0 ]; then
	echo "valgrind run failed"
	[ "${vg_fail:-1}" -ne 0 ] || fail=$((fail + 1))
	status=1
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
