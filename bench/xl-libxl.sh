#!/bin/bash
# Debian's real xl with the empty-script libxl (contrib/libxl), timed: an
# empty script= (no script, xen-loopd's watch) against script=block-loopd
# and the stock block script, in one run, on the test harness (private
# xenstored, blkback emulator with running guests, private namespace).
#
#   bench/xl-libxl.sh [--libxl DIR] [--rounds N] [--domains N]
#
#   --libxl DIR    the patched libxenlight's directory (default
#                  build-test-libxl/lib, where tools/run-tests.sh's libxl
#                  stage builds it; tests/libxl/build-libxl.sh DIR builds
#                  one into DIR/lib)
#   --rounds N     one disk at a time: N xl block-attach + block-detach of
#                  one disk into a running guest (default 20)
#   --domains N    N domains each attach a read-only disk of one image at
#                  once, as N domain starts would, then detach (default 40)
#
# Every mode runs with the patched library (for a disk with a script it
# behaves as Debian's).  Each time includes starting xl itself.  Prints
# figures; asserts nothing about them.  Needs the build (meson) and root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
args=("$@")     # h_init runs this again, in a private namespace, with them
libxl_dir=$root/build-test-libxl/lib
rounds=20
domains=40
while [ $# -gt 0 ]; do
	case $1 in
	--libxl) libxl_dir=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--domains) domains=$2; shift 2 ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "xl-libxl.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	esac
done
case "$rounds$domains" in *[!0-9]*) echo "xl-libxl.sh: --rounds and --domains take numbers" >&2; exit 2 ;; esac
[ -f "$libxl_dir/libxenlight.so.4.17" ] || {
	echo "xl-libxl.sh: no libxenlight.so.4.17 in $libxl_dir (tests/libxl/build-libxl.sh builds it)" >&2
	exit 1
}
export XEN_LIBXL_DIR
XEN_LIBXL_DIR=$(cd "$libxl_dir" && pwd)

. "$root/tests/harness/lib.sh"
. "$root/tests/daemon/lib-daemon.sh"
. "$root/tests/harness/lib-xl.sh"
. "$root/tests/libxl/lib-libxl.sh"
h_init "${args[@]}"
hl_setup
h_log "xl with $XEN_LIBXL_DIR/libxenlight.so.4.17"

# spec KIND VDEV PATH MODE — the disk specification of each mode.
spec() {
	local access=ro s
	[ "$4" = w ] && access=rw
	case $1 in
	empty) s="script=," ;;
	stock) s="" ;;
	*) s="script=$1," ;;
	esac
	printf 'format=raw,vdev=%s,access=%s,%starget=%s\n' "$2" "$access" "$s" "$3"
}

now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }

ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }

h_xl_domain 1
img=$(h_sparse_file one.img 64M)
shared=$(h_sparse_file shared.img 64M)
for ((d = 2; d < domains + 2; d++)); do
	h_xl_domain "$d"
done

declare -A att det start stop failed
for kind in empty block-loopd stock; do
	failed[$kind]=0
	# One disk at a time into a running guest.
	: >"$H_TMP/att"
	: >"$H_TMP/det"
	for ((i = 0; i < rounds; i++)); do
		t0=$(now_us)
		h_xl block-attach 1 "$(spec "$kind" xvdb "$img" w)" ||
			{ failed[$kind]=$((failed[$kind] + 1)); cat "$H_XL_ERR" >>"$H_TMP/log/bench-$kind-attach.err"; }
		t1=$(now_us)
		h_xl block-detach 1 xvdb ||
			{ failed[$kind]=$((failed[$kind] + 1)); cat "$H_XL_ERR" >>"$H_TMP/log/bench-$kind-detach.err"; }
		t2=$(now_us)
		echo $((t1 - t0)) >>"$H_TMP/att"
		echo $((t2 - t1)) >>"$H_TMP/det"
	done
	att[$kind]=$(median <"$H_TMP/att")
	det[$kind]=$(median <"$H_TMP/det")

	# N domains attach one read-only image at once, then detach at once.
	pids=()
	t0=$(now_us)
	for ((d = 2; d < domains + 2; d++)); do
		env LD_PRELOAD="$XL_PRELOAD" "$H_XL" block-attach "$d" "$(spec "$kind" xvda "$shared" r)" \
			</dev/null >/dev/null 2>>"$H_TMP/log/bench-$kind-attach.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || failed[$kind]=$((failed[$kind] + 1)); done
	t1=$(now_us)
	loops=$(h_loop_count_for "$shared")
	pids=()
	for ((d = 2; d < domains + 2; d++)); do
		env LD_PRELOAD="$XL_PRELOAD" "$H_XL" block-detach "$d" xvda \
			</dev/null >/dev/null 2>>"$H_TMP/log/bench-$kind-detach.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || failed[$kind]=$((failed[$kind] + 1)); done
	t2=$(now_us)
	start[$kind]="$((t1 - t0)) $loops"
	stop[$kind]=$((t2 - t1))
	# What a failed detach left behind goes before the next mode.
	for ((d = 2; d < domains + 2; d++)); do
		h_exists "$(hl_be "$d" xvda)" && { h_xl block-detach -f "$d" xvda || true; }
	done
	h_exists "$(hl_be 1 xvdb)" && { h_xl block-detach -f 1 xvdb || true; }
	hl_wait_no_loop "$shared"
	hl_wait_no_loop "$img"
	h_log "$kind done, ${failed[$kind]} xl command(s) failed (log: $H_TMP/log)"
done

printf '\nReal xl (xen-utils-4.17) with the empty-script libxl; each time includes xl itself.\n'
printf '%-44s %12s %12s %12s\n' "" "script= empty" "block-loopd" "stock block"
printf '%-44s %12s %12s %12s\n' "one disk at a time: attach, median ms" \
	"$(ms "${att[empty]}")" "$(ms "${att[block-loopd]}")" "$(ms "${att[stock]}")"
printf '%-44s %12s %12s %12s\n' "one disk at a time: detach, median ms" \
	"$(ms "${det[empty]}")" "$(ms "${det[block-loopd]}")" "$(ms "${det[stock]}")"
set -- ${start[empty]}; e_t=$1 e_l=$2
set -- ${start[block-loopd]}; l_t=$1 l_l=$2
set -- ${start[stock]}; s_t=$1 s_l=$2
printf '%-44s %12s %12s %12s\n' "$domains domains attach one ro image: total ms" "$(ms "$e_t")" "$(ms "$l_t")" "$(ms "$s_t")"
printf '%-44s %12s %12s %12s\n' "  loop devices for it" "$e_l" "$l_l" "$s_l"
printf '%-44s %12s %12s %12s\n' "$domains domains detach: total ms" \
	"$(ms "${stop[empty]}")" "$(ms "${stop[block-loopd]}")" "$(ms "${stop[stock]}")"
printf '%-44s %12s %12s %12s\n' "failed xl commands (of $((2 * rounds + 2 * domains)))" \
	"${failed[empty]}" "${failed[block-loopd]}" "${failed[stock]}"
printf '(%d rounds one at a time; machine: %s CPUs, load %s)\n' "$rounds" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
for kind in empty block-loopd stock; do
	[ "${failed[$kind]}" = 0 ] && continue
	printf '\n%s: what the failed xl commands said:\n' "$kind"
	cat "$H_TMP/log/bench-$kind-attach.err" "$H_TMP/log/bench-$kind-detach.err" 2>/dev/null |
		{ grep 'error' || true; } | sed 's/Domain [0-9]*:/Domain N:/; s|/vbd/[0-9]*/|/vbd/N/|; s/\[[0-9]*\]/[pid]/' | sort | uniq -c
done
h_daemon_stop
