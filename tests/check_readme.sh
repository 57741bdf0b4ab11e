#!/bin/sh
# The README's configuration table must be exactly `bulwark config-keys`.
# TAP output, run by `make check`.
readme="${srcdir:-.}/README.md"
want=$(./bulwark config-keys)
have=$(sed -n '/<!-- config-keys:begin -->/,/<!-- config-keys:end -->/p' "$readme" | sed '1d;$d')
echo "1..1"
if [ "$want" = "$have" ]; then
	echo "ok 1 - README configuration table matches bulwark config-keys"
else
	echo "not ok 1 - README configuration table differs from bulwark config-keys (paste its output)"
	printf "%s\n" "$want" > readme-keys.tmp; printf "%s\n" "$have" | diff readme-keys.tmp -  | sed 's/^/# /'
fi
