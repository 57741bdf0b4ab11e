#!/bin/sh
# The layers of workers/ (see workers/README.md), enforced on #include lines
# in the spirit of curl's checksrc. Each rule: the files it binds (a regex on
# the path below workers/), the includes they may not have (a regex on what
# follows #include), and why. TAP output, run by `make check`.
top="${srcdir:-.}/workers"

rules() {
	# files ; forbidden include ; rule ; exempt
	cat <<'RULES'
^core/;"(http|pool|store|api|cli)/;core/ includes only core/
^http/;"(pool|store|api|cli)/;http/ speaks FastCGI/HTTP only (routes.c alone wires api/ handlers);^http/routes\.c$
^api/;"(pool|cli)/;api/ never reaches into the pool or the CLI
^store/;"(http|api|pool|cli)/;store/ knows no request, pool or CLI
^(core|http|api|pool|cli|store/(redis|mongo));<libpq-fe\.h>;only store/pg.c includes libpq
^(core|http|api|pool|cli|store/(pg|mongo));<hiredis/;only store/redis.c includes hiredis
^(core|http|api|pool|cli|store/(pg|redis));<mongoc/;only store/mongo*.c include libmongoc
^(core|http|pool|cli|api/([^t]|t[^e]));<bson/;libbson stays inside store/ and the telemetry code
^(http|api|pool|cli|store);<openssl/;only core/ includes OpenSSL
^(core|api|pool|cli|store);<fcgi;only http/ includes libfcgi
^(core|http|api|cli|store);<systemd/;only pool/ includes libsystemd
RULES
}

[ -d "$top/core" ] || { echo "1..0 # SKIP no workers/ below ${srcdir:-.}"; exit 0; }
echo "1..$(rules | wc -l)"
i=0
rules | while IFS=';' read -r files forbidden why exempt; do
	i=$((i + 1))
	bad=$(cd "$top" && find . -name '*.[ch]' | sed 's|^\./||' | grep -E "$files" |
		grep -vE "${exempt:-^$}" | sort |
		while read -r f; do
			grep -HnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*$forbidden" "$f"
			[ $? -le 1 ] || echo "$f: grep failed"
		done 2>&1)
	if [ -z "$bad" ]; then
		echo "ok $i - $why"
	else
		echo "not ok $i - $why"
		printf '%s\n' "$bad" | sed 's|^|# workers/|'
	fi
done
