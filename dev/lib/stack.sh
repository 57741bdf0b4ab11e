#!/usr/bin/env bash
# A throwaway stack on loopback for bulwark: PostgreSQL 15, Redis 7 (two roles), a MongoDB
# wire server (jongodb) and nginx in front of the worker pool.
#
#   dev/lib/stack.sh DIR PORT_BASE up|down|destroy|status
#   dev/lib/stack.sh DIR PORT_BASE start|stop|kill SVC     SVC: pg redis redis_cache mongo nginx
#
# Ports: pg BASE+1, redis BASE+2, redis_cache BASE+3, mongo BASE+4, nginx (http) BASE+10.
# State lives under DIR (configs, pid files, logs in DIR/logs, data); the PostgreSQL data
# directory lives in a mktemp directory under /tmp owned by `postgres` (initdb refuses
# root), its path kept in DIR/pg.path. DIR/run/ is where bulwark puts its sockets.
#
#   up       start what is not running, wait until each service answers, write DIR/stack.env
#   down     stop everything the stack started (by pid); data is kept
#   destroy  down, then delete the stack's data (DIR and the PostgreSQL directory)
#   status   one line per service; exit 0 only if all run
#   stop SVC graceful stop (pg: fast shutdown; redis: SIGTERM, AOF flushed; nginx: QUIT)
#   kill SVC SIGKILL to the service's whole process group (a crash)
#   start SVC start again: same port, same data
#
# At `up`: BULWARK_MONGO=URI uses that MongoDB instead of starting jongodb;
# BW_NGINX_EXTRA=FILE is included into the nginx server block (extra locations);
# BW_NGINX_WORKERS sets worker_processes (default 1); BW_STACK_TIMEOUT (default 20 s).
# As root, `up` reserves BASE+1..BASE+10 in net.ipv4.ip_local_reserved_ports (until reboot) so
# that no outgoing connection takes one of the stack's ports as its ephemeral port.
# Prints nothing on success (status prints its table).
set -euo pipefail
bw_prog=stack
# shellcheck source=dev/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SERVICES=(pg redis redis_cache mongo nginx)
PG_BIN=/usr/lib/postgresql/15/bin
TIMEOUT=${BW_STACK_TIMEOUT:-20}
JONGODB=${BW_JONGODB:-$BW_ROOT/.dev/npm/node_modules/@jongodb/memory-server-bin-linux-x64-gnu/bin/jongodb}

usage() {
	bw_die "usage: dev/lib/stack.sh DIR PORT_BASE up|down|destroy|status|start SVC|stop SVC|kill SVC"
}

(($# >= 3)) || usage
[[ $2 =~ ^[0-9]+$ ]] && (($2 >= 1024 && $2 <= 65000)) || bw_die "PORT_BASE must be a number in 1024..65000"
DIR=$(bw_abspath "$1")
[[ $DIR != *[[:space:]\#\;\'\"]* ]] || bw_die "DIR must not contain spaces or #;'\" ($DIR)"
# AF_UNIX paths are limited to 107 bytes; bulwark's sockets go to DIR/run/.
((${#DIR} + 16 <= 107)) || bw_die "DIR is too long for unix socket paths under DIR/run ($DIR)"
BASE=$2
CMD=$3
SVC=${4:-}

P_PG=$((BASE + 1))
P_REDIS=$((BASE + 2))
P_CACHE=$((BASE + 3))
P_MONGO=$((BASE + 4))
P_HTTP=$((BASE + 10))
URL="http://127.0.0.1:$P_HTTP"
LOGS=$DIR/logs

mkdir -p "$DIR" "$LOGS" "$DIR/run"
exec 9>"$DIR/.lock"
flock 9

OLD_BASE=
if [[ -f $DIR/port_base && $(cat "$DIR/port_base") != "$BASE" ]]; then
	OLD_BASE=$(cat "$DIR/port_base")
fi

# ---------------------------------------------------------------- PostgreSQL

pg_dir() {
	[[ -f $DIR/pg.path ]] && cat "$DIR/pg.path"
	return 0
}

# pg_as CMD...: run a PostgreSQL tool as the postgres user (as ourselves when not root).
pg_as() {
	if ((EUID == 0)); then
		(cd / && runuser -u postgres -- bash -c "$BW_CLOSEFDS" bw-pg "$@")
	else
		(cd / && bash -c "$BW_CLOSEFDS" bw-pg "$@")
	fi
}

pg_init() {
	local pgd
	pgd=$(pg_dir)
	if [[ -n $pgd && -f $pgd/data/PG_VERSION ]]; then
		return 0
	fi
	if [[ -z $pgd || ! -d $pgd ]]; then
		if ((EUID == 0)); then
			pgd=$(mktemp -d /tmp/bulwark-pg.XXXXXX)
			chown postgres:postgres "$pgd"
		else
			pgd=$DIR/pg
			mkdir -p "$pgd"
		fi
		chmod 700 "$pgd"
		echo "$pgd" >"$DIR/pg.path"
	fi
	pg_as mkdir -p "$pgd/sock"
	if ! pg_as "$PG_BIN/initdb" -D "$pgd/data" -U postgres -A trust -E UTF8 --locale=C \
		--no-instructions >"$LOGS/pg-initdb.log" 2>&1; then
		bw_tail "$LOGS/pg-initdb.log" 30
		bw_die "initdb failed in $pgd/data"
	fi
	pg_as bash -c "echo \"include_if_exists = 'bulwark-stack.conf'\" >>'$pgd/data/postgresql.conf'"
}

pg_pid() {
	local pgd pid
	pgd=$(pg_dir)
	[[ -n $pgd ]] || return 1
	pid=$(bw_read_pid "$pgd/data/postmaster.pid")
	bw_pid_alive "$pid" postgres || return 1
	echo "$pid"
}

pg_start() {
	local pgd
	pg_init
	pgd=$(pg_dir)
	# Regenerated at every start, so the stack's ports always win.
	pg_as bash -c "cat >'$pgd/data/bulwark-stack.conf'" <<-EOF
		# written by dev/lib/stack.sh at each start
		listen_addresses = '127.0.0.1'
		port = $P_PG
		unix_socket_directories = '$pgd/sock'
		fsync = on
		synchronous_commit = on
		full_page_writes = on
		max_connections = 200
		logging_collector = off
		log_line_prefix = '%m [%p] %q%u@%d '
		log_timezone = 'UTC'
		timezone = 'UTC'
	EOF
	if ! pg_as "$PG_BIN/pg_ctl" start -D "$pgd/data" -w -t "$TIMEOUT" -s >>"$LOGS/pg.log" 2>&1; then
		bw_tail "$LOGS/pg.log" 30
		bw_die "pg did not start on 127.0.0.1:$P_PG within ${TIMEOUT} s"
	fi
}

pg_ready() {
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$P_PG" -U postgres -d postgres -t 1
}

pg_stop() {
	local pgd
	pgd=$(pg_dir)
	pg_as "$PG_BIN/pg_ctl" stop -D "$pgd/data" -m fast -w -t "$TIMEOUT" -s >>"$LOGS/pg.log" 2>&1
}

pg_createdb() {
	local q="SELECT 1 FROM pg_database WHERE datname = 'bulwark'"
	if [[ -z $("$PG_BIN/psql" -h 127.0.0.1 -p "$P_PG" -U postgres -d postgres -XtAqc "$q") ]]; then
		"$PG_BIN/createdb" -h 127.0.0.1 -p "$P_PG" -U postgres bulwark ||
			bw_die "createdb bulwark failed"
	fi
}

# ---------------------------------------------------------------- Redis

redis_dir() { # role
	echo "$DIR/$1"
}

redis_port() {
	if [[ $1 == redis ]]; then echo "$P_REDIS"; else echo "$P_CACHE"; fi
}

redis_conf() { # role
	local d port
	d=$(redis_dir "$1")
	port=$(redis_port "$1")
	mkdir -p "$d/data"
	{
		echo "# written by dev/lib/stack.sh at each start"
		echo "bind 127.0.0.1"
		echo "port $port"
		# Also a unix socket, the cheaper transport for a Redis on the same host
		# (bench/run uses it; the tests use TCP).
		echo "unixsocket $d/redis.sock"
		echo "unixsocketperm 700"
		echo "protected-mode yes"
		echo "daemonize no"
		echo "pidfile $d/redis.pid"
		echo 'logfile ""'
		echo "dir $d/data"
		echo 'save ""'
		if [[ $1 == redis ]]; then
			# The rate-limit and key store: never evict. No persistence: nothing
			# here is truth (a lost bucket is a full one, a lost key record or
			# tombstone is read again from PostgreSQL), and an append-only file
			# would cost a write(2) on every limiter decision.
			echo "appendonly no"
			echo "maxmemory-policy noeviction"
		else
			# The cache: bounded, evicts the least frequently used, keeps nothing.
			echo "appendonly no"
			echo "maxmemory 64mb"
			echo "maxmemory-policy allkeys-lfu"
		fi
	} >"$d/redis.conf"
}

redis_pid() { # role
	local pid
	pid=$(bw_read_pid "$(redis_dir "$1")/redis.pid")
	bw_pid_alive "$pid" redis-server || return 1
	echo "$pid"
}

redis_start() { # role
	local d
	d=$(redis_dir "$1")
	redis_conf "$1"
	bw_spawn "$d/redis.pid" "$LOGS/$1.log" redis-server "$d/redis.conf"
}

redis_ready() { # role
	[[ $(redis-cli -h 127.0.0.1 -p "$(redis_port "$1")" ping 2>/dev/null) == PONG ]]
}

# ---------------------------------------------------------------- MongoDB (jongodb)

mongo_external() {
	[[ -f $DIR/mongo/external ]]
}

mongo_pid() {
	local pid
	pid=$(bw_read_pid "$DIR/mongo/mongo.pid")
	bw_pid_alive "$pid" jongodb || return 1
	echo "$pid"
}

mongo_start() {
	mkdir -p "$DIR/mongo"
	if [[ ! -x $JONGODB ]]; then
		"$BW_ROOT/dev/lib/install.sh" npm
	fi
	[[ -x $JONGODB ]] || bw_die "jongodb is not installed ($JONGODB)"
	# Where this start's output begins, to find its JONGODB_URI line.
	stat -c %s "$LOGS/mongo.log" 2>/dev/null >"$DIR/mongo/log.offset" || echo 0 >"$DIR/mongo/log.offset"
	bw_spawn "$DIR/mongo/mongo.pid" "$LOGS/mongo.log" "$JONGODB" --host=127.0.0.1 --port="$P_MONGO"
}

mongo_ready() {
	local off
	off=$(cat "$DIR/mongo/log.offset" 2>/dev/null || echo 0)
	tail -c "+$((off + 1))" "$LOGS/mongo.log" 2>/dev/null | grep -q '^JONGODB_URI=' &&
		bw_tcp_open "$P_MONGO"
}

# ---------------------------------------------------------------- nginx

nginx_args() {
	echo -p "$DIR/nginx/" -c "$DIR/nginx/nginx.conf" -e "$LOGS/nginx-error.log"
}

nginx_gen() {
	local nd=$DIR/nginx workers=${BW_NGINX_WORKERS:-1}
	mkdir -p "$nd/snippets" "$nd/sites" "$nd/tmp/client_body" "$nd/tmp/fastcgi" \
		"$nd/tmp/proxy" "$nd/tmp/scgi" "$nd/tmp/uwsgi"

	sed "s#/run/bulwark/#$DIR/run/#g" "$BW_ROOT/nginx/snippets/bulwark.conf" >"$nd/snippets/bulwark.conf"
	sed -e "s#/run/bulwark/#$DIR/run/#g" \
		-e "s#^\([[:space:]]*\)listen 80;#\1listen 127.0.0.1:$P_HTTP;#" \
		-e '/^[[:space:]]*listen \[::\]:80;/d' \
		-e 's#^\([[:space:]]*\)include snippets/bulwark.conf;#&\n\1include extra.conf;#' \
		"$BW_ROOT/nginx/bulwark.conf" >"$nd/sites/bulwark.conf"
	grep -q "listen 127.0.0.1:$P_HTTP;" "$nd/sites/bulwark.conf" &&
		grep -q "include extra.conf;" "$nd/sites/bulwark.conf" ||
		bw_die "nginx/bulwark.conf must contain the lines 'listen 80;' and 'include snippets/bulwark.conf;'"

	if [[ -n ${BW_NGINX_EXTRA:-} ]]; then
		[[ -r $BW_NGINX_EXTRA ]] || bw_die "BW_NGINX_EXTRA: cannot read $BW_NGINX_EXTRA"
		cp "$BW_NGINX_EXTRA" "$nd/extra.conf"
	else
		echo "# extra server-block directives (BW_NGINX_EXTRA at stack up)" >"$nd/extra.conf"
	fi

	{
		echo "# written by dev/lib/stack.sh at each 'up' - do not edit"
		# Workers must reach bulwark's sockets in $DIR/run (mode 0660, owned by root).
		((EUID == 0)) && echo "user root;"
		echo "worker_processes $workers;"
		echo "pid $nd/nginx.pid;"
		echo "lock_file $nd/nginx.lock;"
		echo "error_log $LOGS/nginx-error.log warn;"
		echo "events {"
		echo "	worker_connections 1024;"
		echo "}"
		echo "http {"
		echo "	access_log $LOGS/nginx-access.log;"
		echo "	client_body_temp_path $nd/tmp/client_body;"
		echo "	fastcgi_temp_path $nd/tmp/fastcgi;"
		echo "	proxy_temp_path $nd/tmp/proxy;"
		echo "	scgi_temp_path $nd/tmp/scgi;"
		echo "	uwsgi_temp_path $nd/tmp/uwsgi;"
		echo "	default_type application/octet-stream;"
		echo "	sendfile on;"
		echo "	tcp_nopush on;"
		echo "	server_tokens off;"
		echo "	include sites/bulwark.conf;"
		echo "}"
	} >"$nd/nginx.conf.new"
	mv "$nd/nginx.conf.new" "$nd/nginx.conf"

	local out
	# shellcheck disable=SC2046
	if ! out=$(nginx -t -q $(nginx_args) 2>&1); then
		printf '%s\n' "$out" >&2
		bw_die "nginx -t failed for $nd/nginx.conf"
	fi
}

nginx_pid() {
	local pid
	pid=$(bw_read_pid "$DIR/nginx/nginx.pid")
	bw_pid_alive "$pid" nginx || return 1
	echo "$pid"
}

nginx_start() {
	[[ -f $DIR/nginx/nginx.conf ]] || nginx_gen
	# nginx daemonizes itself (its master calls setsid) and writes its pid file.
	# shellcheck disable=SC2046
	if ! bash -c "$BW_CLOSEFDS" bw-nginx nginx $(nginx_args) </dev/null >>"$LOGS/nginx-error.log" 2>&1; then
		bw_tail "$LOGS/nginx-error.log" 20
		bw_die "nginx failed to start on 127.0.0.1:$P_HTTP"
	fi
}

nginx_ready() {
	nginx_pid >/dev/null && [[ $(bw_http_code "$URL/") != 000 ]]
}

# ---------------------------------------------------------------- ports

# The stack's ports lie inside Linux's ephemeral range (32768-60999): an outgoing
# connection may take one as its local port while a service is down, and its TIME-WAIT
# then blocks bind() for 60 s ("Address already in use" with nothing listening). As root,
# reserve BASE+1..BASE+10 (net.ipv4.ip_local_reserved_ports, until reboot) so the kernel
# never hands them out as ephemeral ports.
reserve_ports() {
	local f=/proc/sys/net/ipv4/ip_local_reserved_ports cur item lo hi p missing=
	[[ -w $f ]] || return 0
	cur=$(cat "$f" 2>/dev/null) || return 0
	for ((p = BASE + 1; p <= BASE + 10; p++)); do
		local covered=
		IFS=, read -r -a items <<<"$cur"
		for item in "${items[@]}"; do
			lo=${item%-*} hi=${item#*-}
			[[ $lo =~ ^[0-9]+$ && $hi =~ ^[0-9]+$ ]] || continue
			if ((p >= lo && p <= hi)); then covered=1 && break; fi
		done
		[[ -n $covered ]] || { missing=1 && break; }
	done
	[[ -n $missing ]] || return 0
	echo "${cur:+$cur,}$((BASE + 1))-$((BASE + 10))" >"$f" 2>/dev/null || true
}

# port_held PORT: bind() to 127.0.0.1:PORT with SO_REUSEADDR (as every service does) fails
# now, e.g. because an outgoing connection's TIME-WAIT holds it as its local port.
# (A TIME-WAIT left by the service's own accepted connections does not block it.)
port_held() {
	! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

# ---------------------------------------------------------------- generic

svc_pid() {
	case $1 in
	pg) pg_pid ;;
	redis | redis_cache) redis_pid "$1" ;;
	mongo) mongo_pid ;;
	nginx) nginx_pid ;;
	esac
}

# svc_spawned SVC: the process started for SVC is alive (it may not have exec'd into the
# service yet, so its name is not checked).
svc_spawned() {
	local f
	case $1 in
	pg) f="$(pg_dir)/data/postmaster.pid" ;;
	redis | redis_cache) f="$(redis_dir "$1")/redis.pid" ;;
	mongo) f="$DIR/mongo/mongo.pid" ;;
	nginx) f="$DIR/nginx/nginx.pid" ;;
	esac
	bw_alive "$(bw_read_pid "$f")"
}

svc_port() {
	case $1 in
	pg) echo "$P_PG" ;;
	redis) echo "$P_REDIS" ;;
	redis_cache) echo "$P_CACHE" ;;
	mongo) echo "$P_MONGO" ;;
	nginx) echo "$P_HTTP" ;;
	esac
}

svc_log() {
	case $1 in
	nginx) echo "$LOGS/nginx-error.log" ;;
	*) echo "$LOGS/$1.log" ;;
	esac
}

svc_ready() {
	case $1 in
	pg) pg_ready ;;
	redis | redis_cache) redis_ready "$1" ;;
	mongo) mongo_ready ;;
	nginx) nginx_ready ;;
	esac
}

check_svc() {
	case $1 in
	pg | redis | redis_cache | mongo | nginx) ;;
	*) bw_die "unknown service '$1' (one of: ${SERVICES[*]})" ;;
	esac
}

svc_start() {
	local svc=$1 port pid t
	if [[ $svc == mongo ]] && mongo_external; then
		return 0
	fi
	port=$(svc_port "$svc")
	if ! pid=$(svc_pid "$svc"); then
		if bw_tcp_open "$port"; then
			bw_die "$svc: port 127.0.0.1:$port is already in use by another process"
		fi
		if port_held "$port"; then
			bw_warn "$svc: port $port is held by a closing connection (TIME-WAIT?); waiting up to 65 s"
			t=650
			while port_held "$port" && ((t-- > 0)); do sleep 0.1; done
		fi
		case $svc in
		pg) pg_start ;;
		redis | redis_cache) redis_start "$svc" ;;
		mongo) mongo_start ;;
		nginx) nginx_start ;;
		esac
	fi
	# Ready when it answers; dead when its process is gone for a whole second (nginx
	# writes its pid file only after daemonizing).
	local miss=0
	t=$((TIMEOUT * 10))
	until svc_ready "$svc"; do
		if svc_spawned "$svc"; then miss=0; else miss=$((miss + 1)); fi
		if ((t-- <= 0 || miss >= 10)); then
			bw_tail "$(svc_log "$svc")" 30
			if ((miss < 10)); then
				bw_die "$svc did not answer on 127.0.0.1:$port within ${TIMEOUT} s"
			fi
			bw_die "$svc exited while starting (port 127.0.0.1:$port)"
		fi
		sleep 0.1
	done
	[[ $svc == pg ]] && pg_createdb
	return 0
}

svc_stop() {
	local svc=$1 pid
	if [[ $svc == mongo ]] && mongo_external; then
		return 0
	fi
	pid=$(svc_pid "$svc") || return 0
	case $svc in
	pg) pg_stop || true ;;
	redis | redis_cache | mongo) kill -TERM "$pid" 2>/dev/null || true ;;
	nginx) kill -QUIT "$pid" 2>/dev/null || true ;;
	esac
	if ! bw_wait_group_gone "$pid" "$TIMEOUT"; then
		bw_warn "$svc (pid $pid) did not stop within ${TIMEOUT} s: SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || true
		bw_wait_group_gone "$pid" 5 || bw_die "$svc (pid $pid) survived SIGKILL"
	fi
}

svc_kill() {
	local svc=$1 pid
	if [[ $svc == mongo ]] && mongo_external; then
		bw_die "mongo is external ($(cat "$DIR/mongo/external")): not managed by the stack"
	fi
	pid=$(svc_pid "$svc") || return 0
	# Every service runs as the leader of its own process group (setsid); PostgreSQL's
	# children each lead their own group too. Kill them all at once, as a crash of the
	# machine would, and wait until they are gone.
	local kids k
	kids=$(bw_children "$pid")
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	for k in $kids; do
		kill -KILL -- "-$k" 2>/dev/null || kill -KILL "$k" 2>/dev/null || true
	done
	for k in "$pid" $kids; do
		bw_wait_group_gone "$k" 10 || bw_die "$svc (pid $k) survived SIGKILL"
	done
	# PostgreSQL refuses to start while the pid in postmaster.pid exists, even as a zombie
	# that the machine's init has not reaped yet: wait until it is really gone.
	if [[ $svc == pg ]]; then
		local t=100
		while kill -0 "$pid" 2>/dev/null && ((t-- > 0)); do sleep 0.1; done
	fi
}

q() { # single-quote for a sourceable file
	printf "'%s'" "${1//\'/\'\\\'\'}"
}

write_env() {
	local mongo
	if mongo_external; then
		mongo=$(cat "$DIR/mongo/external")
	else
		mongo="mongodb://127.0.0.1:$P_MONGO/bulwark"
	fi
	{
		echo "# bulwark dev stack $DIR (PORT_BASE $BASE), written by dev/lib/stack.sh up"
		# Workers connect as bulwark_app (owns nothing, row-level security binds it); migrate,
		# tenant and key as the owner. `bulwark migrate up` creates bulwark_app.
		echo "export BULWARK_POSTGRES=$(q "host=127.0.0.1 port=$P_PG dbname=bulwark user=bulwark_app")"
		echo "export BULWARK_POSTGRES_OWNER=$(q "host=127.0.0.1 port=$P_PG dbname=bulwark user=postgres")"
		echo "export BULWARK_SCHEMA_DIR=$(q "$BW_ROOT/schema")"
		echo "export BULWARK_REDIS=$(q "127.0.0.1:$P_REDIS")"
		echo "export BULWARK_REDIS_CACHE=$(q "127.0.0.1:$P_CACHE")"
		echo "export BW_REDIS_SOCK=$(q "$(redis_dir redis)/redis.sock")"
		echo "export BW_REDIS_CACHE_SOCK=$(q "$(redis_dir redis_cache)/redis.sock")"
		echo "export BULWARK_MONGO=$(q "$mongo")"
		echo "export BULWARK_LISTEN=$(q "$DIR/run/fcgi.sock")"
		echo "export BULWARK_STATUS_LISTEN=$(q "$DIR/run/status.sock")"
		echo "export BW_URL=$(q "$URL")"
		echo "export BW_STACK_DIR=$(q "$DIR")"
		echo "export BW_STACK_PORT_BASE=$(q "$BASE")"
		echo "export BW_STACK_SH=$(q "$BW_ROOT/dev/lib/stack.sh")"
		echo "export BW_PG_BIN=$(q "$PG_BIN")"
		echo "export BW_PG_DATA=$(q "$(pg_dir)/data")"
		echo "export BW_PG_SOCK=$(q "$(pg_dir)/sock")"
		echo "export BW_NGINX_CONF=$(q "$DIR/nginx/nginx.conf")"
		echo "export BW_LOG_DIR=$(q "$LOGS")"
		echo "export BW_MONGO_EXTERNAL=$(mongo_external && echo 1 || echo 0)"
	} >"$DIR/stack.env.new"
	mv "$DIR/stack.env.new" "$DIR/stack.env"
}

cmd_up() {
	echo "$BASE" >"$DIR/port_base"
	mkdir -p "$DIR/mongo"
	if bw_mongo_external; then
		echo "$BULWARK_MONGO" >"$DIR/mongo/external"
		svc_stop_if_ours_mongo
	else
		rm -f "$DIR/mongo/external"
	fi
	reserve_ports
	pg_init
	write_env

	local before=
	[[ -f $DIR/nginx/nginx.conf ]] && before=$(cat "$DIR/nginx/nginx.conf" "$DIR/nginx/sites/bulwark.conf" \
		"$DIR/nginx/snippets/bulwark.conf" "$DIR/nginx/extra.conf" 2>/dev/null | md5sum)
	nginx_gen
	local pid
	if pid=$(nginx_pid); then
		local after
		after=$(cat "$DIR/nginx/nginx.conf" "$DIR/nginx/sites/bulwark.conf" \
			"$DIR/nginx/snippets/bulwark.conf" "$DIR/nginx/extra.conf" | md5sum)
		[[ $before == "$after" ]] || kill -HUP "$pid"
	fi

	local svc
	for svc in "${SERVICES[@]}"; do
		svc_start "$svc"
	done
}

# A jongodb from an earlier `up` without BULWARK_MONGO: stop it, it is no longer used.
svc_stop_if_ours_mongo() {
	local pid
	if pid=$(mongo_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		bw_wait_group_gone "$pid" "$TIMEOUT" || kill -KILL -- "-$pid" 2>/dev/null || true
	fi
}

cmd_down() {
	local i
	for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
		svc_stop "${SERVICES[i]}"
	done
	svc_stop_if_ours_mongo
}

cmd_destroy() {
	cmd_down
	local pgd
	pgd=$(pg_dir)
	if [[ -n $pgd && $pgd == /tmp/bulwark-pg.* && -d $pgd ]]; then
		rm -rf -- "$pgd"
	fi
	rm -rf -- "$DIR/logs" "$DIR/nginx" "$DIR/redis" "$DIR/redis_cache" "$DIR/mongo" "$DIR/pg" \
		"$DIR/run" "$DIR/pg.path" "$DIR/stack.env" "$DIR/port_base"
}

cmd_status() {
	local svc pid rc=0 port
	for svc in "${SERVICES[@]}"; do
		port=$(svc_port "$svc")
		if [[ $svc == mongo ]] && mongo_external; then
			printf '%-12s external  %s\n' "$svc" "$(cat "$DIR/mongo/external")"
		elif pid=$(svc_pid "$svc"); then
			if svc_ready "$svc"; then
				printf '%-12s running   pid %-8s 127.0.0.1:%s\n' "$svc" "$pid" "$port"
			else
				printf '%-12s starting  pid %-8s 127.0.0.1:%s (not answering)\n' "$svc" "$pid" "$port"
				rc=3
			fi
		else
			printf '%-12s stopped   %-12s 127.0.0.1:%s\n' "$svc" "" "$port"
			rc=3
		fi
	done
	[[ -f $DIR/stack.env ]] && printf 'env: %s\n' "$DIR/stack.env"
	return $rc
}

if [[ -n $OLD_BASE ]]; then
	# A stopped stack may move to other ports; a running one may not.
	for svc in "${SERVICES[@]}"; do
		if [[ $CMD != up ]] || svc_pid "$svc" >/dev/null; then
			bw_die "the stack in $DIR uses PORT_BASE $OLD_BASE, not $BASE (dev/lib/stack.sh $1 $OLD_BASE down first)"
		fi
	done
fi

case $CMD in
up) cmd_up ;;
down) cmd_down ;;
destroy) cmd_destroy ;;
status) cmd_status ;;
start | stop | kill)
	[[ -n $SVC ]] || usage
	check_svc "$SVC"
	[[ -f $DIR/port_base ]] || bw_die "no stack in $DIR (run: dev/lib/stack.sh $1 $BASE up)"
	"svc_$CMD" "$SVC"
	;;
*) usage ;;
esac
