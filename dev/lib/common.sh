# shellcheck shell=bash
# Helpers shared by dev/run, dev/test, bench/run and dev/lib/*.sh. Sourced, not run.
# Callers use `set -euo pipefail`.

BW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export BW_ROOT

bw_prog=${bw_prog:-$(basename "$0")}

bw_die() {
	printf '%s: %s\n' "$bw_prog" "$*" >&2
	exit 1
}

bw_warn() {
	printf '%s: %s\n' "$bw_prog" "$*" >&2
}

# bw_tail FILE [N]: the last N lines of a log, indented, on stderr.
bw_tail() {
	local f=$1 n=${2:-30}
	if [[ -s $f ]]; then
		printf -- '--- last %s lines of %s ---\n' "$n" "$f" >&2
		tail -n "$n" "$f" >&2
		printf -- '---\n' >&2
	else
		printf -- '--- %s is empty or missing ---\n' "$f" >&2
	fi
}

# bw_abspath PATH: absolute path (PATH need not exist; its parent is created).
bw_abspath() {
	local p=$1
	[[ $p == /* ]] || p="$PWD/$p"
	mkdir -p "$(dirname "$p")"
	printf '%s/%s\n' "$(cd "$(dirname "$p")" && pwd)" "$(basename "$p")"
}

# bw_make_failure FILE: the useful part of a failed make's output, on stderr: compiler
# and make errors with some context, or the end of the file when there is none.
bw_make_failure() {
	local f=$1
	local re='(error|warning):|^make(\[[0-9]+\])?: \*\*\* '
	if grep -qE "$re" "$f"; then
		grep -E -B2 -A6 "$re" "$f" | head -n 150 >&2
	else
		tail -n 40 "$f" >&2
	fi
}

# bw_proc_state PID: the state letter of PID (R, S, D, Z, ...), or nothing if gone.
bw_proc_state() {
	local line rest
	read -r line 2>/dev/null <"/proc/$1/stat" || return 0
	rest=${line##*) }
	echo "${rest%% *}"
}

# bw_pid_alive PID COMM: PID runs (not a zombie) and its /proc/PID/comm starts with COMM
# (guards against a recycled pid in a stale pid file).
bw_pid_alive() {
	local pid=$1 comm=$2 c st
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	st=$(bw_proc_state "$pid")
	[[ -n $st && $st != Z && $st != X ]] || return 1
	read -r c 2>/dev/null <"/proc/$pid/comm" || return 1
	[[ $c == "$comm"* ]]
}

# bw_read_pid FILE: first line of a pid file, or nothing.
bw_read_pid() {
	local l=
	[[ -r $1 ]] && read -r l 2>/dev/null <"$1"
	[[ $l =~ ^[0-9]+$ ]] && echo "$l"
	return 0
}

# bw_alive PID: PID exists and is not a zombie (the machine's init may reap slowly).
bw_alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(bw_proc_state "$1")
	[[ -n $st && $st != Z && $st != X ]]
}

# bw_group_alive PGID: some process of group PGID exists and is not a zombie.
bw_group_alive() {
	local f line rest st pgrp
	kill -0 -- "-$1" 2>/dev/null || return 1
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		rest=${line##*) }
		# state ppid pgrp ...
		read -r st _ pgrp _ <<<"$rest"
		[[ $pgrp == "$1" && $st != Z && $st != X ]] && return 0
	done
	return 1
}

# bw_children PID: pids of the live direct children of PID (from /proc).
bw_children() {
	local f line rest st ppid
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		rest=${line##*) }
		read -r st ppid _ <<<"$rest"
		if [[ $ppid == "$1" && $st != Z ]]; then
			f=${f#/proc/}
			echo "${f%/stat}"
		fi
	done
	return 0
}

# bw_wait_gone PID SECONDS: wait until PID has exited; 1 if it still runs.
bw_wait_gone() {
	local pid=$1 t=$(($2 * 20))
	while bw_alive "$pid"; do
		((t-- > 0)) || return 1
		sleep 0.05
	done
	return 0
}

# bw_wait_group_gone PGID SECONDS: wait until no process of group PGID is left.
bw_wait_group_gone() {
	local pgid=$1 t=$(($2 * 20))
	while bw_alive "$pgid"; do
		((t-- > 0)) || return 1
		sleep 0.05
	done
	while bw_group_alive "$pgid"; do
		((t-- > 0)) || return 1
		sleep 0.05
	done
	return 0
}

# bw_tcp_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
bw_tcp_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# bw_http_code URL [curl args]: the HTTP status, 000 if nothing answered.
bw_http_code() {
	local url=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true
}

# bw_wait_http200 URL SECONDS [PID]: wait for a 200; 2 as soon as PID has exited.
bw_wait_http200() {
	local url=$1 t=$(($2 * 10)) pid=${3:-}
	while :; do
		[[ $(bw_http_code "$url") == 200 ]] && return 0
		if [[ -n $pid ]] && ! bw_alive "$pid"; then
			return 2
		fi
		((t-- > 0)) || return 1
		sleep 0.1
	done
}

# bw_mongo_external: BULWARK_MONGO names a MongoDB the stack must use instead of starting
# jongodb. A BULWARK_MONGO left over from a sourced stack.env (BW_STACK_DIR set, no
# BW_MONGO_EXTERNAL=1) is the stack's own jongodb, not an external server.
bw_mongo_external() {
	[[ -n ${BULWARK_MONGO:-} ]] || return 1
	[[ -z ${BW_STACK_DIR:-} || ${BW_MONGO_EXTERNAL:-0} == 1 ]]
}

# Runs "$@" with every file descriptor above 2 closed (daemons must not inherit a lock or
# a caller's pipes), replacing the shell (exec keeps the pid).
# shellcheck disable=SC2016
BW_CLOSEFDS='for f in /proc/$$/fd/*; do f=${f##*/}; if ((f > 2)); then eval "exec $f>&-"; fi; done; exec "$@"'

# bw_spawn PIDFILE LOG CMD...: start CMD in a new session (a Ctrl-C in the caller's
# terminal does not reach it; its process group can be signalled at once), stdin from
# /dev/null, stdout and stderr appended to LOG, its pid in PIDFILE and in $BW_SPAWNED.
bw_spawn() {
	local pidfile=$1 log=$2
	shift 2
	setsid bash -c "$BW_CLOSEFDS" bw-spawn "$@" </dev/null >>"$log" 2>&1 &
	BW_SPAWNED=$!
	echo "$BW_SPAWNED" >"$pidfile"
}

# bw_as_root CMD...: run CMD as root (directly, or through sudo).
bw_as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		bw_die "need root for: $* (no sudo found)"
	fi
}
