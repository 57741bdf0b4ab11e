#!/bin/sh
# Every migration in schema/ must pass `bulwark migrate lint` (no database).
# TAP output, run by `make check`.
dir="${srcdir:-.}/schema"
echo "1..1"
if out=$(./bulwark migrate lint --dir "$dir" 2>&1); then
	echo "ok 1 - schema/ passes bulwark migrate lint"
else
	echo "not ok 1 - schema/ fails bulwark migrate lint"
	printf "%s\n" "$out" | sed 's/^/# /'
fi
