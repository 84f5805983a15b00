#!/bin/bash
# The manual pages render with man(1) and groff without a single warning
# (warnings are errors here), carry no unfilled @VARIABLE@, and name every
# option and command the programs' --help lists.
#
#   man-pages.sh XEN-LOOPD XEN-LOOPCTL SOURCE-PAGE... --built BUILT-PAGE...
set -euo pipefail

xen_loopd=$1 xen_loopctl=$2
shift 2

skip() {
	printf '\n*** SKIP: %s ***\n\n' "$*" >&2
	[ "${CI:-}" = true ] && { echo "CI=true: refusing to skip" >&2; exit 1; }
	exit 77
}
command -v man >/dev/null || skip "man is missing (package man-db; tools/install-deps.sh installs it)"
command -v groff >/dev/null || skip "groff is missing (package groff-base; tools/install-deps.sh installs it)"

fail=0
bad() { printf 'FAIL: %s\n' "$*" >&2; fail=1; }

for page in "$@"; do
	[ "$page" = --built ] && continue
	for width in 80 60; do
		err=$(MANWIDTH=$width man --warnings -l "$page" 2>&1 >/dev/null) || bad "man -l $page exited $?"
		[ -z "$err" ] || bad "man --warnings -l $page (width $width):"$'\n'"$err"
	done
	err=$(groff -man -ww -z "$page" 2>&1) || bad "groff -man -ww -z $page exited $?"
	[ -z "$err" ] || bad "groff -man -ww -z $page:"$'\n'"$err"
	# The page names itself after its file.
	name=${page##*/}
	th=$(sed -n 's/^\.TH \([^ ]*\) \([0-9]\).*/\1.\2/p' "$page" | sed 's/\\-/-/g' | tr 'A-Z' 'a-z')
	[ "$th" = "$name" ] || bad "$page: .TH says $th"
done

# The built pages (after --built) have every @VARIABLE@ filled in.
pages=()
built=0
for page in "$@"; do
	if [ "$page" = --built ]; then
		built=1
		continue
	fi
	pages+=("$page")
	if [ "$built" = 1 ] && grep -n '@[A-Z_]*@' "$page" >&2; then
		bad "$page: @VARIABLE@ left unfilled (above)"
	fi
done

# page_of NAME — the first page given whose file is NAME.
page_of() {
	local p
	for p in "${pages[@]}"; do
		[ "${p##*/}" = "$1" ] && { printf '%s\n' "$p"; return 0; }
	done
	return 1
}

# documented PAGE OPTION — the page mentions --OPTION (written \-\-option).
documented() {
	local esc=${2//-/\\-}
	grep -qF -- "\\-\\-$esc" "$1" || grep -qF -- "--$2" "$1"
}

# Every long option of xen-loopd --help is in xen-loopd(8).
p=$(page_of xen-loopd.8)
for opt in $("$xen_loopd" --help | grep -o -- '--[a-z][a-z-]*' | sed 's/^--//' | sort -u); do
	documented "$p" "$opt" || bad "xen-loopd --$opt is not documented in xen-loopd(8)"
done

# Every command and long option of xen-loopctl --help is in xen-loopctl(8).
p=$(page_of xen-loopctl.8)
help=$("$xen_loopctl" --help)
for opt in $(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sed 's/^--//' | sort -u); do
	documented "$p" "$opt" || bad "xen-loopctl --$opt is not documented in xen-loopctl(8)"
done
for cmd in $(sed -n '/^Commands:/,/^$/p' <<<"$help" | awk '/^  [a-z]/ { print $1 }'); do
	grep -qE "^\.BR? ${cmd//-/\\\\-}( |$)" "$p" || bad "xen-loopctl $cmd has no entry in xen-loopctl(8)"
done

# Every exit status xen-loopctl --help lists is in the page.
for st in $(sed -n '/^Exit status:/,$p' <<<"$help" | awk '/^  [0-9]/ { print $1 }'); do
	grep -qx "\.B $st" "$p" || bad "exit status $st of xen-loopctl is not in xen-loopctl(8)"
done

exit "$fail"
