#!/usr/bin/env bash
# Installs what building, running and testing bulwark needs, and only what is missing.
#   dev/lib/install.sh [all|apt|npm]      (default: all)
# apt: Debian 12 packages (dpkg check first; `apt-get update` only when an install fails
#      without it). System services that the packages would start (postgresql, redis,
#      nginx on their default ports) are kept from starting during the install: the
#      project runs its own on high ports (dev/lib/stack.sh).
# npm: dev/package.json + dev/package-lock.json installed with `npm ci` into .dev/npm
#      (jongodb, the MongoDB wire-compatible server used by the dev/test stacks);
#      redone only when the lock file changed. Skipped when BULWARK_MONGO is set.
# Quiet when there is nothing to do.
set -euo pipefail
bw_prog=install
# shellcheck source=dev/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BW_APT_PACKAGES=(
	build-essential autoconf automake pkg-config
	libfcgi-dev libpq-dev libhiredis-dev libmongoc-dev libbson-dev
	libsystemd-dev libcmocka-dev libssl-dev
	postgresql-15 redis-server nginx
	wrk curl python3 clang
)

BW_NPM_DIR="$BW_ROOT/.dev/npm"
BW_JONGODB="$BW_NPM_DIR/node_modules/@jongodb/memory-server-bin-linux-x64-gnu/bin/jongodb"

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_install() {
	local log=$1
	shift
	DEBIAN_FRONTEND=noninteractive bw_as_root apt-get install -y -q \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		--no-install-recommends "$@" >>"$log" 2>&1
}

install_apt() {
	local missing=() p
	for p in "${BW_APT_PACKAGES[@]}" "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0

	printf 'installing: %s\n' "${missing[*]}"
	mkdir -p "$BW_ROOT/.dev"
	local log="$BW_ROOT/.dev/install.log"
	: >"$log"

	# Keep the packages' init scripts from starting system-wide services (a busy port 80
	# would even make nginx's postinst fail). Only when no policy is in place already.
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# temporary, from bulwark dev/lib/install.sh\nexit 101\n' |
			bw_as_root tee "$policy" >/dev/null
		bw_as_root chmod 755 "$policy"
		made_policy=1
		trap 'bw_as_root rm -f '"$policy" EXIT
	fi

	if ! apt_install "$log" "${missing[@]}"; then
		DEBIAN_FRONTEND=noninteractive bw_as_root apt-get update -q >>"$log" 2>&1 ||
			{ bw_tail "$log" 40; bw_die "apt-get update failed"; }
		apt_install "$log" "${missing[@]}" ||
			{ bw_tail "$log" 40; bw_die "apt-get install failed: ${missing[*]}"; }
	fi
	if [[ -n $made_policy ]]; then
		bw_as_root rm -f "$policy"
		trap - EXIT
	fi
}

install_npm() {
	! bw_mongo_external || return 0
	if ! command -v npm >/dev/null; then
		install_apt nodejs npm
	fi
	if [[ -x $BW_JONGODB ]] && cmp -s "$BW_ROOT/dev/package-lock.json" "$BW_NPM_DIR/package-lock.json"; then
		return 0
	fi
	mkdir -p "$BW_NPM_DIR"
	cp "$BW_ROOT/dev/package.json" "$BW_ROOT/dev/package-lock.json" "$BW_NPM_DIR/"
	local log="$BW_ROOT/.dev/npm.log"
	if ! (cd "$BW_NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
		rm -f "$BW_NPM_DIR/package-lock.json"
		bw_tail "$log" 40
		bw_die "npm ci failed (dev/package.json)"
	fi
	[[ -x $BW_JONGODB ]] || bw_die "npm ci did not install $BW_JONGODB"
}

case ${1:-all} in
all)
	install_apt
	install_npm
	;;
apt) install_apt ;;
npm) install_npm ;;
*) bw_die "usage: dev/lib/install.sh [all|apt|npm]" ;;
esac
