#!/bin/bash
# Run every libFuzzer target for SECONDS each (default 60), one after the
# other, from the seed corpus in fuzz/corpus/NAME/ (and fuzz/dict/NAME.dict
# when there is one). Prints the executions per target; exits 1 if any
# target found a crash, keeping the input in BUILDDIR/fuzz-crashes/NAME/.
# A new finding becomes a fix plus a copy of the input in fuzz/regress/NAME/
# (the replay tests of "make check" then run it in every build).
#
#   scripts/fuzz.sh [SECONDS] [BUILDDIR]
# BUILDDIR is a build configured with --enable-fuzz CC=clang-14 (default:
# the current directory); the targets are built there first ("make fuzz").
# FUZZ_SEED (default 1) fixes libFuzzer's seed so that a CI run explores the
# same inputs each time and a result can be reproduced; FUZZ_SEED=0 lets
# libFuzzer pick one (for long runs that should look somewhere new).
set -uo pipefail
seconds=${1:-60}
seed=${FUZZ_SEED:-1}
build=$(cd "${2:-.}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
targets="http frame action config broker_msg jwt"

case $seconds in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [BUILDDIR]" >&2; exit 2;; esac
make -C "$build" -j2 --quiet fuzz || exit 1

status=0
total=0
for t in $targets; do
	work=$build/fuzz-work/$t
	crashes=$build/fuzz-crashes/$t
	log=$build/fuzz-work/$t.log
	rm -rf "$work" "$crashes"
	mkdir -p "$work" "$crashes"
	cp "$src/fuzz/corpus/$t/"* "$work/"
	dict=()
	[ -f "$src/fuzz/dict/$t.dict" ] && dict=(-dict="$src/fuzz/dict/$t.dict")
	# -timeout: an input taking 10 s is a finding (a hang) too.
	"$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -seed="$seed" \
		-rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "${dict[@]}" "$work" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	units=$(ls "$work" | wc -l)
	if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$crashes")" ]; then
		status=1
		echo "fuzz_$t: FAILED after ${runs:-?} executions (exit $rc); input kept in $crashes:"
		ls "$crashes" | sed 's/^/    /'
		grep -E 'ERROR:|fuzz check failed|runtime error' "$log" | head -n 5 | sed 's/^/    /'
	else
		echo "fuzz_$t: ${runs:-?} executions in ${seconds}s (seed $seed), corpus $units inputs"
	fi
	total=$((total + ${runs:-0}))
done
echo "fuzzing: $total executions in total; $( [ $status -eq 0 ] && echo 'no crash' || echo 'crashes found')"
exit "$status"
