#!/usr/bin/env bash
# Runs the integration suite N times in a row (default 5) against one fresh stack, on the
# sanitizer build dev/test made (.dev/build-asan), to show it is not flaky:
#   tests/integration/repeat.sh [N] [FILTER]
# One line per run (its summary and its seed); exit 1 if any run failed. Port base:
# DEV_TEST_PORT_BASE (47400); time bounds: BW_IT_TIME_MULT (2, as dev/test).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
n=${1:-5}
filter=${2:-}
stack=dev/lib/stack.sh dir=.dev/test base=${DEV_TEST_PORT_BASE:-47400}
bin=$PWD/.dev/build-asan/bulwark
[[ -x $bin ]] || { echo "no $bin: run dev/test first" >&2; exit 2; }
trap '$stack $dir $base down >/dev/null 2>&1' EXIT
$stack $dir $base destroy >/dev/null 2>&1 || true
$stack $dir $base up >/dev/null || exit 1
(. $dir/stack.env && "$bin" migrate up </dev/null >/dev/null) || exit 1
failed=0
for ((i = 1; i <= n; i++)); do
	out=$dir/repeat.$i.out err=$dir/repeat.$i.err
	(
		. $dir/stack.env
		export BW_BULWARK_BIN=$bin BW_IT_TIME_MULT=${BW_IT_TIME_MULT:-2}
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
		exec timeout 900 python3 tests/integration/run.py $filter </dev/null
	) >"$out" 2>"$err"
	rc=$?
	((rc == 0)) || failed=$((failed + 1))
	echo "run $i: $(tail -n 1 "$out") $(grep -m1 '^# seed' "$err")"
	grep '^FAIL' "$out"
done
echo "$((n - failed)) of $n runs green"
((failed == 0))
