#!/bin/bash
# Soak: thousands of attach/detach cycles across many domains against the
# real daemon, torn down at random points — at once (before the daemon
# publishes, or while it sets up), while the daemon holds the device for a
# blkback that has not opened it, after blkback connected, after a refusal —
# the libxl way or by destroying the directory outright, with the blkback
# emulator now and then killed with SIGKILL and restarted.  At the end the
# loop devices, the daemon's open fds and its RSS are back where they
# started (RSS within SOAK_RSS_SLACK_KB, see below).
#
#   tests/soak/soak.sh            (root; or: meson test -C BUILD --suite soak)
#
# Knobs (environment):
#   SOAK_CYCLES=2000      attach/detach cycles to run
#   SOAK_BATCH=24         disks in flight at once (one round)
#   SOAK_DOMAINS=60       guest domains the disks are spread over
#   SOAK_KILL_EVERY=10    about one round in N kills blkback-emu (0: never)
#   SOAK_SEED=<random>    seed of $RANDOM: the same seed, the same choices
#   SOAK_MAX_SECONDS=900  stop early after this long (a bound, not a check)
#   SOAK_RSS_SLACK_KB=1024  allowed growth of the daemon's RSS, measured
#                         after a warm-up round (malloc keeps a few arenas
#                         and hash tables keep their size)
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
. "$(dirname "$0")/../hardening/lib-hardening.sh"
h_init "$@"

: "${SOAK_CYCLES:=2000}" "${SOAK_BATCH:=24}" "${SOAK_DOMAINS:=60}" "${SOAK_KILL_EVERY:=10}"
: "${SOAK_MAX_SECONDS:=900}" "${SOAK_RSS_SLACK_KB:=1024}"
: "${SOAK_SEED:=$(( $(od -An -N2 -tu2 /dev/urandom) ))}"
RANDOM=$SOAK_SEED
h_log "soak: $SOAK_CYCLES cycles, $SOAK_BATCH at a time over $SOAK_DOMAINS domains, seed $SOAK_SEED"

hold="$H_TMP/hold-off"
h_xenstored_start
h_blkback_start --hold-off "$hold"
h_daemon_start
# A stopped or killed blkback-emu must never hold up the cleanup.
h_on_cleanup 'rm -f "$hold"'

I=$H_TMP/images
SHARED=()
for i in 0 1 2 3; do
	SHARED+=("$(h_sparse_file "shared-$i.img" 8M)")
done
for ((d = 1; d <= SOAK_DOMAINS; d++)); do
	h_xs domain --domid "$d" >/dev/null
done

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$H_DAEMON_PID/status"; }
released_all() { "$XEN_LOOPCTL" list --json | tr -d ' \n' | grep -q '"devices":\[\]'; }
forgot_all() { "$XEN_LOOPCTL" status --json | grep -q '"disks": *0'; }
no_loops() { [ -z "$(h_loops_in_tmp)" ]; }
FDS0=$(hd_fds) SOCKS0=$(hd_socks)

# cycle DOMID DEVID PARAMS MODE POINT TEARDOWN — one disk's life; a failure
# leaves a note in $H_TMP/failed.
cycle() {
	local domid=$1 devid=$2 params=$3 mode=$4 point=$5 teardown=$6 be rc=0
	be=$(h_be_path "$domid" "$devid")
	h_xs add --home "$H_HOME" --domid "$domid" --devid "$devid" --params "$params" \
		--mode "$mode" --no-script >/dev/null || rc=$?
	if [ "$rc" = 0 ]; then
		case $point in
		early) ;;
		held) h_xs wait "$be/hotplug-status" connected --timeout 10 >/dev/null || rc=$? ;;
		connected) h_xs wait "$be/state" 4 --timeout 10 >/dev/null || rc=$? ;;
		refused) h_xs wait "$be/hotplug-status" error --timeout 10 >/dev/null || rc=$? ;;
		esac
		if [ "$rc" != 0 ]; then
			{
				echo "$domid/$devid ($params, $mode): no $point ($rc)"
				xenstore-ls -f "$be" 2>&1 | sed 's/^/    /'
			} >>"$H_TMP/failed"
		fi
	fi
	if [ "$teardown" = destroy ]; then
		h_xs remove --home "$H_HOME" --domid "$domid" --devid "$devid" --stage destroy >/dev/null 2>&1
	else
		h_xs remove --home "$H_HOME" --domid "$domid" --devid "$devid" --timeout 3 >/dev/null 2>&1
	fi
	return 0
}

# blkback_crash — SIGKILL the emulator at a random moment of the round, then
# start a new one.
blkback_crash() {
	sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
	kill -KILL "$H_BLKBACK_PID"
	wait "$H_BLKBACK_PID" 2>/dev/null || true
	h_unregister_pid "$H_BLKBACK_PID"
	H_BLKBACK_PID=
	h_blkback_start --hold-off "$hold"
}

round() {
	local held=$1 crash=$2 n=0 slot domid k devid img mode point teardown p
	local -A used=()
	local pids=()
	rm -f "$H_TMP/failed"
	if [ "$held" = 1 ]; then touch "$hold"; else rm -f "$hold"; fi
	while ((n < SOAK_BATCH)); do
		domid=$((1 + RANDOM % SOAK_DOMAINS))
		k=$((RANDOM % 16))
		slot=$domid/$k
		[ -n "${used[$slot]:-}" ] && continue
		used[$slot]=1
		devid=$((51712 + 16 * k))
		if [ "$held" = 1 ]; then point=held; else point=connected; fi
		((RANDOM % 3 == 0)) && point=early
		case $((RANDOM % 10)) in
		0)
			img=$I/missing-$k.img
			mode=r
			[ "$point" = early ] || point=refused
			;;
		1 | 2 | 3 | 4)
			img=${SHARED[RANDOM % ${#SHARED[@]}]}
			mode=r
			;;
		*)
			img=$I/rw-$domid-$k.img
			[ -e "$img" ] || truncate -s 4M "$img"
			mode=w
			((RANDOM % 8 == 0)) && mode='w!'
			;;
		esac
		teardown=libxl
		((RANDOM % 4 == 0)) && teardown=destroy
		cycle "$domid" "$devid" "$img" "$mode" "$point" "$teardown" &
		pids+=($!)
		h_register_pid "$!" "cycle $domid/$devid"
		n=$((n + 1))
	done
	[ "$crash" = 1 ] && blkback_crash
	for p in "${pids[@]}"; do
		wait "$p" || true
	done
	# Forget them all at once (h_unregister_pid for each would be slow).
	local -A done_pids=()
	local keep=() e
	for p in "${pids[@]}"; do done_pids[$p]=1; done
	for e in "${H_PIDS[@]}"; do
		[ -n "${done_pids[${e%% *}]:-}" ] || keep+=("$e")
	done
	H_PIDS=("${keep[@]}")
	rm -f "$hold"
	if [ -s "$H_TMP/failed" ]; then
		if [ "$crash" = 1 ]; then
			# Disks in flight when blkback-emu died may not connect.
			h_log "round $ROUNDS (blkback-emu killed): $(grep -c '^[0-9]' "$H_TMP/failed") disks did not get there; tolerated"
			{ echo "round $ROUNDS:"; cat "$H_TMP/failed"; } >>"$H_TMP/log/soak-tolerated.log"
		else
			cat "$H_TMP/failed" >&2
			h_fail "round $ROUNDS: disks did not reach their point (above)"
		fi
	fi
	h_daemon_alive
	h_wait_until 20 "the daemon to let every disk of round $ROUNDS go" released_all
	h_wait_until 20 "the daemon to forget every disk after round $ROUNDS" settled
	h_wait_until 20 "no loop device of the test after round $ROUNDS" no_loops
}

# The emulator answers watch events of a backend that is being destroyed
# and may write state (and sectors, info) after the directory went,
# creating it anew, as blkback's own writes can; the daemon never does.
# Sweep such debris, checking none of it is the daemon's.
sweep_debris() {
	local base=$H_HOME/backend/vbd d n node
	for d in $(xenstore-list "$base" 2>/dev/null || true); do
		for n in $(xenstore-list "$base/$d" 2>/dev/null || true); do
			for node in hotplug-status hotplug-error physical-device physical-device-path diskseq; do
				h_exists "$base/$d/$n/$node" &&
					h_fail "$base/$d/$n/$node written after its backend was removed: $(xenstore-ls -f "$base/$d/$n")"
			done
			xenstore-rm "$base/$d/$n" 2>/dev/null || true
		done
	done
	return 0
}
settled() { sweep_debris; forgot_all; }

ROUNDS=0 CYCLES=0 KILLS=0
start=$SECONDS
# The warm-up round sets the RSS baseline.
round 0 0
ROUNDS=1 CYCLES=$SOAK_BATCH
RSS0=$(rss_kb)
h_log "after the warm-up round: $(h_daemon_fds) fds, RSS $RSS0 kB"
while ((CYCLES < SOAK_CYCLES)); do
	if ((SECONDS - start > SOAK_MAX_SECONDS)); then
		h_log "stopping after $((SECONDS - start)) s (SOAK_MAX_SECONDS), $CYCLES cycles done"
		break
	fi
	held=0 crash=0
	((RANDOM % 4 == 0)) && held=1
	if ((SOAK_KILL_EVERY > 0 && RANDOM % SOAK_KILL_EVERY == 0)); then
		crash=1
		KILLS=$((KILLS + 1))
	fi
	round "$held" "$crash"
	ROUNDS=$((ROUNDS + 1))
	CYCLES=$((CYCLES + SOAK_BATCH))
	((ROUNDS % 20 == 0)) && h_log "round $ROUNDS: $CYCLES cycles, $KILLS blkback kills, $(h_daemon_fds) fds, RSS $(rss_kb) kB"
done

fds_back() { [ "$(hd_fds)" = "$FDS0" ] && [ "$(hd_socks)" -le "$SOCKS0" ]; }
for ((i = 0; i < 200; i++)); do
	fds_back && break
	sleep 0.05
done
fds=$(hd_fds) socks=$(hd_socks)
rss=$(rss_kb)
h_log "done: $ROUNDS rounds, $CYCLES cycles, $KILLS blkback kills in $((SECONDS - start)) s"
h_log "daemon fds other than sockets at the start: $FDS0"
h_log "at the end: $fds; sockets: $SOCKS0 at the start, $socks at the end"
h_log "RSS: $RSS0 kB after the warm-up round, $rss kB at the end"
# Only this test's: other users of the host may change theirs meanwhile
# (h_cleanup compares the whole set under CI=true).
h_assert_eq "" "$(h_loops_in_tmp)" "loop devices of the test at the end"
h_assert_eq "$FDS0" "$fds" "the daemon's open fds other than sockets"
((socks <= SOCKS0)) || h_fail "the daemon has $socks sockets open, $SOCKS0 at the start"
((rss <= RSS0 + SOAK_RSS_SLACK_KB)) ||
	h_fail "the daemon's RSS grew from $RSS0 kB to $rss kB (more than $SOAK_RSS_SLACK_KB kB)"
h_daemon_stop
