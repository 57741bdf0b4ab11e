#!/usr/bin/env bash
# Builds bulwark out of tree, quietly.
#   dev/lib/build.sh release     -> .dev/build       (./configure defaults: -g -O2)
#   dev/lib/build.sh asan        -> .dev/build-asan  (--enable-sanitizers --enable-test-routes)
#   dev/lib/build.sh TREE --configure-only
# autoreconf -fi runs in the source tree when configure is missing or older than
# configure.ac / a Makefile.am (generated files are git-ignored); configure runs again when
# its arguments changed. Prints nothing on success; on failure the tool's output.
# Extra configure arguments: BW_CONFIGURE_ARGS (appended).
set -euo pipefail
bw_prog=build
# shellcheck source=dev/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

tree=${1:-release}
case $tree in
release)
	bdir="$BW_ROOT/.dev/build"
	args=()
	;;
asan)
	bdir="$BW_ROOT/.dev/build-asan"
	args=(--enable-sanitizers --enable-test-routes)
	;;
*) bw_die "usage: dev/lib/build.sh release|asan [--configure-only]" ;;
esac
# shellcheck disable=SC2206
args+=(${BW_CONFIGURE_ARGS:-})

mkdir -p "$bdir" "$BW_ROOT/.dev"

# One build at a time per source tree: autoreconf writes into it.
exec 8>"$BW_ROOT/.dev/build.lock"
flock 8

needs_autoreconf() {
	local f
	[[ -x $BW_ROOT/configure ]] || return 0
	[[ $BW_ROOT/configure.ac -nt $BW_ROOT/configure ]] && return 0
	while IFS= read -r -d '' f; do
		[[ $f -nt $BW_ROOT/configure ]] && return 0
		[[ -e ${f%.am}.in ]] || return 0
	done < <(find "$BW_ROOT" -name Makefile.am -not -path "$BW_ROOT/.dev/*" -print0)
	return 1
}

[[ -f $BW_ROOT/configure.ac ]] || bw_die "no configure.ac in $BW_ROOT"
[[ -f $BW_ROOT/Makefile.am ]] || bw_die "no Makefile.am in $BW_ROOT yet"

if needs_autoreconf; then
	log="$BW_ROOT/.dev/autoreconf.log"
	if ! (cd "$BW_ROOT" && autoreconf -fi) >"$log" 2>&1; then
		cat "$log" >&2
		bw_die "autoreconf -fi failed"
	fi
fi

stamp="$bdir/.configure-args"
want="${args[*]:-}"
if [[ ! -f $bdir/Makefile || ! -f $bdir/config.status || ! -f $stamp ]] ||
	[[ $(cat "$stamp") != "$want" ]]; then
	rm -f "$stamp"
	if ! (cd "$bdir" && "$BW_ROOT/configure" "${args[@]}") >"$bdir/configure.out" 2>&1; then
		tail -n 40 "$bdir/configure.out" >&2
		[[ -f $bdir/config.log ]] && printf '(full details: %s)\n' "$bdir/config.log" >&2
		bw_die "configure failed in $bdir"
	fi
	printf '%s' "$want" >"$stamp"
fi

[[ ${2:-} == --configure-only ]] && exit 0

if ! make -C "$bdir" -j2 >"$bdir/make.out" 2>&1; then
	# Compiler diagnostics first, then the end of the log for context.
	bw_make_failure "$bdir/make.out"
	bw_die "make failed in $bdir (full output: $bdir/make.out)"
fi
