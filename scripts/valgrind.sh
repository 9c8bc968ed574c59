#!/bin/bash
# The integration tests with every daemon they start run under valgrind
# (memcheck: invalid reads and writes, uses of uninitialised values, and
# definite or indirect leaks all count as errors). The harness
# (tests/integration/myxidtest.py, MYXID_WRAPPER) keeps each valgrind report
# beside the daemon's log and fails the test when one shows an error.
#
#   scripts/valgrind.sh [BUILDDIR] [TEST...]
# BUILDDIR is an ordinary build (not --enable-sanitizers: valgrind and
# AddressSanitizer do not mix); default the current directory. TESTs are
# paths like tests/integration/test_protocol.py; the default is the subset
# below. Prints the suite's "N passed, N failed" line; exits non-zero if a
# test failed.
set -uo pipefail
build=$(cd "${1:-.}" && pwd)
shift || true

# Every Python integration test except the ones bound to wall-clock time,
# which valgrind's 20-50x slowdown turns into false failures:
#   test_limits.py      rates per second, ping timeouts, handshake deadlines
#   test_recheck.py     periodic re-checks on short intervals
#   test_hostile_clients.py  slowloris and idle timers measured in seconds
#   test_broker_outage.py, test_broker_cluster.py, test_faults_broker.py,
#   test_faults_sql.py  reconnect timing against services stopped on purpose
#   test_bench_smoke.py measures throughput
#   test_log_blocking.py     1,000 clients, and exit times in seconds
#   test_demo_instructions.py  runs the demo's printed commands with sleeps
# The Node tests start their daemons from myxidtest.mjs, which has no
# wrapper support; they are left to the sanitizer build.
default_tests="
	tests/integration/test_protocol.py
	tests/integration/test_handshake.py
	tests/integration/test_frames.py
	tests/integration/test_publish.py
	tests/integration/test_cli.py
	tests/integration/test_plugin_contract.py
	tests/integration/test_reload.py
	tests/integration/test_hostile_input.py
	tests/integration/test_broker_basic.py
	tests/integration/test_broker_push.py
	tests/integration/test_ops.py
	tests/integration/test_history.py
	tests/integration/test_sse.py
	tests/integration/test_presence.py
"
tests=${*:-$default_tests}
skipped="test_limits test_recheck test_hostile_clients test_broker_outage test_broker_cluster test_faults_broker test_faults_sql test_bench_smoke test_log_blocking test_demo_instructions"
echo "valgrind: not run under valgrind (timing-bound): $skipped"

# --trace-children=no: the daemon forks nothing; the helpers it is run
# beside (RabbitMQ, PostgreSQL) are not ours to check.
export MYXID_WRAPPER="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-origins=no --num-callers=30 --trace-children=no"

# Only the tests that exist in this tree (others are added and renamed).
present=
for t in $tests; do
	[ -f "$build/$t" ] || [ -f "$(dirname "$0")/../$t" ] && present="$present $t"
done
# One test at a time: valgrind is CPU-bound, and timing is tight enough.
make -C "$build" check TESTS="$(echo $present)" >"$build/valgrind-check.log" 2>&1
status=$?
pass=0 fail=0
for t in $present; do
	trs=$build/${t%.py}.trs
	[ -f "$trs" ] || continue
	log=${trs%.trs}.log
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-1}))
	echo "  $t: ${line:-no summary}"
	if grep -q '^:test-result: \(FAIL\|ERROR\)' "$trs"; then
		grep -E '^FAIL' "$log" | head -n 10 | sed 's/^/      /'
	fi
done
echo "valgrind: $pass passed, $fail failed"
exit "$status"
