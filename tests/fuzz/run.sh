#!/bin/sh
# Builds a libFuzzer target with clang and runs it.
#
#   tests/fuzz/run.sh [SECONDS] [libFuzzer options...]     (default 600 s)
#
# The target is tests/fuzz/fuzz_telemetry.c with the validator's and the reader's sources,
# built with -fsanitize=fuzzer,address,undefined into $FUZZ_DIR (default
# /tmp/bulwark-fuzz). It starts from the committed corpus
# (tests/fuzz/corpus/telemetry) and writes what it finds to $FUZZ_DIR/corpus,
# crashes to $FUZZ_DIR/crash-*. To keep new inputs, merge them:
#   $FUZZ_DIR/fuzz_telemetry -merge=1 tests/fuzz/corpus/telemetry $FUZZ_DIR/corpus
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${FUZZ_DIR:-/tmp/bulwark-fuzz}
secs=${1:-600}
[ $# -gt 0 ] && shift
mkdir -p "$dir/corpus"
# shellcheck disable=SC2046
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -I"$root/workers" $(pkg-config --cflags libbson-1.0) \
	-o "$dir/fuzz_telemetry" "$root/tests/fuzz/fuzz_telemetry.c" \
	"$root/workers/api/telemetry_validate.c" "$root/workers/api/telemetry_json.c" \
	"$root/workers/core/arena.c" "$root/workers/core/buf.c" "$root/workers/core/json.c" \
	"$root/workers/core/json_tree.c" "$root/workers/core/time.c" \
	$(pkg-config --libs libbson-1.0) -lm
cd "$dir"
exec ./fuzz_telemetry -max_total_time="$secs" -max_len=1100000 -timeout=10 -rss_limit_mb=4096 \
	-print_final_stats=1 -dict="$root/tests/fuzz/telemetry.dict" "$@" \
	"$dir/corpus" "$root/tests/fuzz/corpus/telemetry"
