# The real-Xen stage's scenarios, run by dom0's /init under bash, with the
# real xl, xenstored, blkback and PV guests whose blkfront reads and writes
# the disks (guest-init reports on their consoles).  Every step prints
#   XENTEST STEP <what>
# timings print
#   XENTEST TIME <name> <milliseconds>
# and the last line is XENTEST RESULT PASS or XENTEST RESULT FAIL.  The
# host test (real-xen.sh) reads them from the serial console.
#
# Knobs on the dom0 command line: xentest.cycles=N (block-loopd hot-plug
# cycles, default 20), xentest.stock_cycles=N (stock script cycles,
# default 5).

cycles=20
stock_cycles=5
for a in $(cat /proc/cmdline); do
	case $a in
	xentest.cycles=*) cycles=${a#*=} ;;
	xentest.stock_cycles=*) stock_cycles=${a#*=} ;;
	esac
done

cons=/var/log/xen/console
daemon_log=/var/log/xen-loopd.log
daemon_pid=
loopd_runs=0

# ------------------------------------------------------------ reporting
step() { echo "XENTEST STEP $*"; }
note() { echo "XENTEST NOTE $*"; }
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
# timing NAME START_US — print the milliseconds since START_US.
timing() {
	local t=${EPOCHREALTIME/./}
	local us=$((t - $2))
	printf 'XENTEST TIME %s %d.%03d\n' "$1" $((us / 1000)) $((us % 1000))
}

dump() {
	echo "----- xl list"
	xl list 2>&1
	echo "----- loop devices"
	losetup -a 2>&1
	echo "----- xen-loopctl list"
	xen-loopctl list 2>&1
	echo "----- xenstore backend"
	xenstore-ls -f /local/domain/0/backend 2>&1 | head -n 200
	echo "----- xen-loopd log (last 100 lines)"
	tail -n 100 "$daemon_log" 2>&1
	echo "----- /var/log/xen"
	for f in /var/log/xen/*.log "$cons"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $f"
		tail -n 60 "$f"
	done
	echo "----- dmesg (last 40 lines)"
	dmesg | tail -n 40
}

fail() {
	echo "XENTEST FAIL $*"
	dump
	echo "XENTEST RESULT FAIL"
	exit 1
}

# wait_for SECONDS WHAT COMMAND... — poll COMMAND until it succeeds.
wait_for() {
	local secs=$1 what=$2 end
	shift 2
	end=$(($(now_us) + secs * 1000000))
	until "$@"; do
		[ "$(now_us)" -lt "$end" ] || fail "timed out after ${secs}s waiting for $what"
		sleep 0.1
	done
}

# wait_for_quiet SECONDS COMMAND... — poll COMMAND; 1 if it never succeeded.
wait_for_quiet() {
	local end=$(($(now_us) + $1 * 1000000))
	shift
	until "$@"; do
		[ "$(now_us)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# ------------------------------------------------------------ helpers
# loops_for FILE — how many loop devices are bound to FILE.
loops_for() {
	local n=0 f b
	for f in /sys/block/loop*/loop/backing_file; do
		[ -e "$f" ] || continue
		read -r b <"$f"
		[ "$b" = "$1" ] && n=$((n + 1))
	done
	echo "$n"
}
loops_are() { [ "$(loops_for "$1")" = "$2" ]; }

# mkimage FILE MIB — random data.
mkimage() { dd if=/dev/urandom of="$1" bs=1M count="$2" 2>/dev/null || fail "cannot write $1"; }
# header FILE TOKEN MODE — what the guest agent looks for; clears sector 1.
header() {
	printf 'XLT %s %s\n' "$2" "$3" | dd of="$1" bs=512 count=2 conv=sync,notrunc 2>/dev/null ||
		fail "cannot write the header of $1"
}
acked() { [ "$(dd if="$1" bs=512 skip=1 count=1 2>/dev/null | head -n1)" = "ACK $2" ]; }

# guest_says GUEST TEXT — the guest's console log has a line with TEXT.
guest_says() { grep -qF -- "$2" "$cons/guest-$1.log" 2>/dev/null; }
# guest_cmd GUEST LINE — a line on the guest's console input.
guest_cmd() {
	local id tty
	id=$(xl domid "$1") || fail "no domain $1"
	tty=$(xenstore-read "/local/domain/$id/console/tty") || fail "no console tty for $1"
	printf '%s\n' "$2" >"$tty" || fail "cannot write to $1's console"
}
# guest_count GUEST TEXT — lines with TEXT so far.
guest_count() { grep -cF -- "$2" "$cons/guest-$1.log" 2>/dev/null || true; }

# mkguest NAME DISK... — a PV guest configuration running the agent.
mkguest() {
	local name=$1 d list=
	shift
	for d in "$@"; do list="$list'$d',"; done
	cat >"/root/$name.cfg" <<-EOF
	name = "$name"
	type = "pv"
	kernel = "/guest/vmlinux"
	ramdisk = "/guest/initrd.cpio"
	extra = "console=hvc0 quiet"
	memory = 128
	vcpus = 1
	on_crash = "preserve"
	disk = [ ${list%,} ]
	EOF
}

# create NAME TIMING-NAME — xl create, timed; the guest's agent up.
create() {
	local t
	t=$(now_us)
	xl create "/root/$1.cfg" >"/root/$1.create.log" 2>&1 || { cat "/root/$1.create.log"; fail "xl create $1"; }
	timing "$2" "$t"
	wait_for 120 "guest $1 to come up" guest_says "$1" "AGENT UP"
}

# daemon_start — xen-loopd as a plain background process, on its default
# control socket (where block-loopd looks).
daemon_start() {
	loopd_runs=$((loopd_runs + 1))
	echo "=== run $loopd_runs" >>"$daemon_log"
	xen-loopd --log-level debug </dev/null >>"$daemon_log" 2>&1 &
	daemon_pid=$!
	wait_for 30 "xen-loopd to answer" eval "xen-loopctl status >/dev/null 2>&1"
}

# exited PID — the child PID has exited (a zombie until waited for).
exited() {
	local st
	read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null || return 0
	[ "$st" = Z ]
}

# daemon_stop — SIGTERM, and the daemon exits 0 by itself.
daemon_stop() {
	local rc=0
	kill -TERM "$daemon_pid"
	wait_for 30 "xen-loopd to exit on SIGTERM" exited "$daemon_pid"
	wait "$daemon_pid" || rc=$?
	[ "$rc" = 0 ] || fail "xen-loopd exited $rc after SIGTERM"
}

# healthy GUEST... — each guest runs (not crashed), and no kernel in dom0
# complained (an oops, a warning, blkback's errors).
healthy() {
	local g st
	for g in "$@"; do
		st=$(xl list "$g" 2>/dev/null | awk 'NR == 2 { print $5 }')
		[ -n "$st" ] || fail "guest $g is gone"
		case $st in *c*) fail "guest $g crashed (state $st)" ;; esac
	done
	if dmesg | tail -n "+$((dmesg_base + 1))" | grep -E 'Oops|BUG:|WARNING:|Call Trace|blkback.*(error|fail)'; then
		fail "dom0's kernel complained"
	fi
}

# listed_users — disks the daemon lists.
listed_users() { xen-loopctl list --json | grep -c '"domid"'; }
users_are() { [ "$(listed_users)" = "$1" ]; }

# attach GUEST VDEV IMAGE SCRIPT TIMING-PREFIX — hot-plug IMAGE read-write
# and wait until the guest has read it and written its answer.
attach() {
	local g=$1 vdev=$2 img=$3 script=$4 pfx=$5 tok t out
	tok="t$RANDOM$RANDOM"
	header "$img" "$tok" rw
	t=$(now_us)
	if ! out=$(xl block-attach "$g" "format=raw,vdev=$vdev,access=rw,script=$script,target=$img" 2>&1); then
		echo "$out"
		fail "xl block-attach $g $vdev ($script)"
	fi
	timing "$pfx.attach" "$t"
	wait_for 60 "$g to find $vdev" guest_says "$g" "AGENT FOUND $vdev $tok"
	timing "$pfx.guest_found" "$t"
	wait_for 60 "$g to read $vdev" guest_says "$g" "AGENT SEEN $vdev $tok"
	timing "$pfx.guest_read" "$t"
	wait_for 60 "$g to write $vdev" guest_says "$g" "AGENT WROTE $vdev $tok"
	acked "$img" "$tok" || fail "$g's answer is not in $img"
}

# check GUEST VDEV IMAGE — the guest reads and writes a disk it already has.
check() {
	local g=$1 vdev=$2 img=$3 tok end tries=0
	tok="c$RANDOM$RANDOM"
	header "$img" "$tok" rw
	# A line written to the console tty can be lost (xenconsoled reopens
	# the pty when its last reader closes it): ask again every 5 s.
	end=$(($(now_us) + 60000000))
	until guest_says "$g" "AGENT FOUND $vdev $tok"; do
		[ "$(now_us)" -lt "$end" ] || fail "timed out after 60s waiting for $g to read $vdev again"
		[ "$((tries += 1))" = 1 ] || note "CHECK $vdev sent to $g again (try $tries)"
		guest_cmd "$g" "CHECK $vdev"
		wait_for_quiet 5 guest_says "$g" "AGENT FOUND $vdev $tok"
	done
	wait_for 60 "$g to read $vdev again" guest_says "$g" "AGENT SEEN $vdev $tok"
	wait_for 60 "$g to write $vdev again" guest_says "$g" "AGENT WROTE $vdev $tok"
	acked "$img" "$tok" || fail "$g's answer is not in $img"
}

# detach GUEST VDEV IMAGE TIMING-PREFIX — xl block-detach; the guest lost
# the disk and no loop device is left on IMAGE.
detach() {
	local g=$1 vdev=$2 img=$3 pfx=$4 t gone out letter be
	gone=$(guest_count "$g" "AGENT GONE $vdev")
	t=$(now_us)
	if ! out=$(xl block-detach "$g" "$vdev" 2>&1); then
		echo "$out"
		fail "xl block-detach $g $vdev"
	fi
	timing "$pfx.detach" "$t"
	wait_for 60 "$g to lose $vdev" eval '[ "$(guest_count "$g" "AGENT GONE $vdev")" -gt "$gone" ]'
	# xvdX: major 202, 16 minors a disk.
	letter=${vdev#xvd}
	be="/local/domain/0/backend/vbd/$(xl domid "$g")/$((202 * 256 + ($(printf '%d' "'$letter") - 97) * 16))"
	! xenstore-exists "$be" 2>/dev/null || fail "$be left in xenstore after the detach"
	wait_for 30 "the loop device of $img to go" loops_are "$img" 0
}

# ------------------------------------------------------------ versions
step "versions: $(xl info | awk -F': ' '/^xen_version/ { print "xen " $2 }'), dom0 kernel $(uname -r)"
step "xl: $(readlink -f "$(command -v xl)"), xenstored: C"

# ------------------------------------------------------------ set-up
# What dom0's kernel said while booting is not the scenarios' doing.
dmesg_base=$(dmesg | wc -l)
dmesg | grep -E 'Oops|BUG:|WARNING:|Call Trace' | sed 's/^/XENTEST NOTE boot: /'
base=/images/base.img
rw=/images/rw.img
rw2=/images/rw2.img
mkimage "$base" 8
header "$base" base ro
mkimage "$rw" 4
mkimage "$rw2" 4
base_sum=$(md5sum "$base")
base_sum=${base_sum%% *}
daemon_start
step "xen-loopd runs in dom0 (pid $daemon_pid)"

# ------------------------------------------------------------ scenario 1
step "scenario 1: two guests boot with one read-only image"
mkguest g1 "format=raw,vdev=xvda,access=ro,script=block-loopd,target=$base"
mkguest g2 "format=raw,vdev=xvda,access=ro,script=block-loopd,target=$base"
create g1 create.block-loopd
wait_for 60 "g1 to read xvda" guest_says g1 "AGENT SEEN xvda base $base_sum"
create g2 create.block-loopd
wait_for 60 "g2 to read xvda" guest_says g2 "AGENT SEEN xvda base $base_sum"
[ "$(loops_for "$base")" = 1 ] || fail "$(loops_for "$base") loop devices for $base, not 1"
users_are 2 || fail "xen-loopctl lists $(listed_users) users, not 2"
step "scenario 1: both guests read the image (md5 $base_sum) through one loop device"
# The stock script on the same boot: a third guest, its own loop device.
mkguest gs "format=raw,vdev=xvda,access=ro,script=block,target=$base"
create gs create.stock
wait_for 60 "gs to read xvda" guest_says gs "AGENT SEEN xvda base $base_sum"
[ "$(loops_for "$base")" = 2 ] || fail "$(loops_for "$base") loop devices for $base with the stock guest, not 2"
t=$(now_us)
xl destroy gs || fail "xl destroy gs"
timing destroy.stock "$t"
wait_for 30 "the stock script's loop device to go" loops_are "$base" 1
healthy g1 g2
step "scenario 1: PASS"

# ------------------------------------------------------------ scenario 2
step "scenario 2: $cycles hot-plug cycles of a read-write disk into g1 (block-loopd)"
for ((i = 1; i <= cycles; i++)); do
	attach g1 xvdb "$rw" block-loopd block-loopd
	[ "$(loops_for "$rw")" = 1 ] || fail "cycle $i: $(loops_for "$rw") loop devices for $rw"
	detach g1 xvdb "$rw" block-loopd
	step "scenario 2: cycle $i/$cycles ok"
done
step "scenario 2: $stock_cycles cycles with the stock block script, same boot"
for ((i = 1; i <= stock_cycles; i++)); do
	attach g1 xvdb "$rw" block stock
	detach g1 xvdb "$rw" stock
	step "scenario 2: stock cycle $i/$stock_cycles ok"
done
users_are 2 || fail "xen-loopctl lists $(listed_users) users after the cycles, not 2"
healthy g1 g2
step "scenario 2: PASS"

# ------------------------------------------------------------ scenario 3
step "scenario 3: a read-write conflict is refused"
attach g1 xvdb "$rw" block-loopd block-loopd
if out=$(xl block-attach g2 "format=raw,vdev=xvdb,access=rw,script=block-loopd,target=$rw" 2>&1); then
	echo "$out"
	fail "a second read-write attach of $rw was accepted"
fi
echo "$out"
grep -qF "$rw is in use" <<<"$out" || fail "xl's error does not carry the daemon's message"
# libxl leaves the refused device's nodes until a detach.
if xl block-list g2 | awk 'NR > 1 { print $1 }' | grep -qx 51728; then
	xl block-detach g2 xvdb || fail "xl block-detach of the refused disk"
fi
[ "$(loops_for "$rw")" = 1 ] || fail "$(loops_for "$rw") loop devices for $rw after the refusal"
check g1 xvdb "$rw"
step "scenario 3: refused with the daemon's message; g1 still reads and writes its disk"
healthy g1 g2
step "scenario 3: PASS"

# ------------------------------------------------------------ scenario 5
# (before 4, which destroys the guests)
step "scenario 5: xen-loopd killed with SIGKILL while g1 and g2 run, then restarted"
step "scenario 5: a plain background process, restarted by hand (no fd store: the restart adopts what blkback holds)"
users_are 3 || fail "xen-loopctl lists $(listed_users) users before the kill, not 3"
kill -KILL "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
[ "$(loops_for "$base")" = 1 ] || fail "the kill changed the loop devices of $base"
[ "$(loops_for "$rw")" = 1 ] || fail "the kill changed the loop devices of $rw"
check g1 xvdb "$rw"
step "scenario 5: g1 reads and writes its disk while no daemon runs"
daemon_start
wait_for 30 "the restarted daemon to adopt the 3 disks" users_are 3
[ "$(loops_for "$base")" = 1 ] || fail "$(loops_for "$base") loop devices for $base after the restart"
[ "$(loops_for "$rw")" = 1 ] || fail "$(loops_for "$rw") loop devices for $rw after the restart"
check g1 xvdb "$rw"
attach g2 xvdc "$rw2" block-loopd block-loopd
detach g2 xvdc "$rw2" block-loopd
detach g1 xvdb "$rw" block-loopd
users_are 2 || fail "xen-loopctl lists $(listed_users) users after the detaches, not 2"
step "scenario 5: disks kept and adopted, nothing leaked, attach and detach work after the restart"
healthy g1 g2
step "scenario 5: PASS"

# ------------------------------------------------------------ scenario 5b
step "scenario 5b: xen-loopd as a Type=notify service of systemd --user in dom0, with an fd store, killed with SIGKILL"
daemon_stop
mkdir -p /run/systemd/system
export XDG_RUNTIME_DIR=/run/user/0
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
/usr/lib/systemd/systemd --user --log-target=console </dev/null >>/var/log/systemd-user.log 2>&1 &
sd_pid=$!
sd_up() {
	case $(systemctl --user is-system-running 2>/dev/null) in running | degraded) return 0 ;; esac
	kill -0 "$sd_pid" 2>/dev/null || fail "systemd --user exited"
	return 1
}
wait_for 60 "systemd --user to run" sd_up
echo "=== service" >>"$daemon_log"
systemd-run --user --quiet --unit=xen-loopd \
	-p Type=notify -p FileDescriptorStoreMax=4096 \
	-p Restart=always -p RestartSec=100ms -p StartLimitIntervalSec=0 \
	-p StandardOutput="append:$daemon_log" -p StandardError="append:$daemon_log" \
	/usr/sbin/xen-loopd --log-level debug || fail "systemd-run xen-loopd"
wait_for 30 "the service to answer" eval "xen-loopctl status >/dev/null 2>&1"
wait_for 30 "the service to adopt the 2 disks" users_are 2
svc_pid() { systemctl --user show -p MainPID --value xen-loopd.service; }
stored() { systemctl --user show -p NFileDescriptorStore --value xen-loopd.service; }
# A paused guest: blkback has the disk, its frontend has not connected,
# so the daemon holds the device (and the service manager a copy).
header "$rw2" paused rw
mkguest gp "format=raw,vdev=xvda,access=rw,script=block-loopd,target=$rw2"
xl create -p /root/gp.cfg >/root/gp.create.log 2>&1 || { cat /root/gp.create.log; fail "xl create -p gp"; }
wait_for 30 "the daemon to hold gp's disk" eval '[ "$(xen-loopctl list --json | grep -c "\"held\": *true")" -ge 1 ]'
wait_for 30 "the fd store to keep gp's device" eval '[ "$(stored)" -ge 1 ]'
n_stored=$(stored)
old=$(svc_pid)
kill -KILL "$old"
restarted() { local p; p=$(svc_pid); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$old" ] && xen-loopctl status >/dev/null 2>&1; }
wait_for 30 "systemd to restart xen-loopd" restarted
wait_for 30 "the restarted service to have the 3 disks" users_are 3
[ "$(stored)" = "$n_stored" ] || fail "the fd store holds $(stored) fds after the restart, not $n_stored"
[ "$(loops_for "$rw2")" = 1 ] || fail "$(loops_for "$rw2") loop devices for $rw2 after the restart"
[ "$(loops_for "$base")" = 1 ] || fail "$(loops_for "$base") loop devices for $base after the restart"
step "scenario 5b: restarted by systemd (pid $old -> $(svc_pid)), $n_stored fd(s) kept in its store"
xl unpause gp || fail "xl unpause gp"
wait_for 120 "gp to come up" guest_says gp "AGENT UP"
wait_for 60 "gp to read its disk" guest_says gp "AGENT SEEN xvda paused"
wait_for 60 "gp to write its disk" guest_says gp "AGENT WROTE xvda paused"
acked "$rw2" paused || fail "gp's answer is not in $rw2"
wait_for 30 "the fd store to be emptied once blkback has the device" eval '[ "$(stored)" = 0 ]'
attach g1 xvdb "$rw" block-loopd block-loopd
detach g1 xvdb "$rw" block-loopd
xl destroy gp || fail "xl destroy gp"
wait_for 30 "gp's loop device to go" loops_are "$rw2" 0
wait_for 30 "the daemon to drop gp's disk" users_are 2
systemctl --user stop xen-loopd.service || fail "systemctl stop xen-loopd"
res=$(systemctl --user show -p Result --value xen-loopd.service)
[ "$res" = success ] || fail "the service stopped with result $res"
kill -TERM "$sd_pid"
wait_for 30 "systemd --user to exit" exited "$sd_pid"
wait "$sd_pid" 2>/dev/null
rm -rf /run/systemd/system
daemon_start
wait_for 30 "the plain daemon to adopt the 2 disks" users_are 2
healthy g1 g2
step "scenario 5b: PASS"

# ------------------------------------------------------------ scenario 4
step "scenario 4: xl destroy of guests with disks"
attach g2 xvdb "$rw" block-loopd block-loopd
attach g1 xvdc "$rw2" block-loopd block-loopd
t=$(now_us)
xl destroy g2 || fail "xl destroy g2"
timing destroy.block-loopd "$t"
wait_for 30 "g2's read-write loop device to go" loops_are "$rw" 0
[ "$(loops_for "$base")" = 1 ] || fail "g2's destroy took the shared device of $base from g1"
wait_for 30 "the daemon to drop g2's disks" users_are 2
xl destroy g1 || fail "xl destroy g1"
wait_for 30 "g1's read-write loop device to go" loops_are "$rw2" 0
wait_for 30 "the shared read-only loop device to go" loops_are "$base" 0
wait_for 30 "the daemon to drop every disk" users_are 0
[ -z "$(xenstore-list /local/domain/0/backend/vbd 2>/dev/null)" ] || fail "backends left in xenstore"
step "scenario 4: every loop device released"
healthy
step "scenario 4: PASS"

# The daemon stops cleanly on SIGTERM.
daemon_stop

# ------------------------------------------------------------ scenario 6
# Disks with an empty script= need a libxl that runs no script for them
# (a change to libxl, not in Debian's).  The hook: build-images.sh puts a
# libxenlight.so.4.17 built with that change into /opt/libxl-empty-script
# when XEN_STAGE_LIBXL names its directory; xl then runs with it, and the
# daemon's xenstore watch serves the disks.
libxl_dir=/opt/libxl-empty-script
if [ -e "$libxl_dir/libxenlight.so.4.17" ]; then
	step "scenario 6: script= empty, xl with the libxl in $libxl_dir"
	daemon_start
	export LD_LIBRARY_PATH=$libxl_dir
	mkguest g6 "format=raw,vdev=xvda,access=ro,script=,target=$base"
	create g6 create.empty-script
	sc=$(xenstore-read "/local/domain/0/backend/vbd/$(xl domid g6)/51712/script") ||
		fail "no script node in g6's backend"
	[ -z "$sc" ] || fail "g6's backend names the script '$sc': this libxl does not keep script= empty"
	wait_for 60 "g6 to read xvda" guest_says g6 "AGENT SEEN xvda base $base_sum"
	[ "$(loops_for "$base")" = 1 ] || fail "$(loops_for "$base") loop devices for $base, not 1"
	for ((i = 1; i <= stock_cycles; i++)); do
		attach g6 xvdb "$rw" "" empty-script
		detach g6 xvdb "$rw" empty-script
		step "scenario 6: cycle $i/$stock_cycles ok"
	done
	attach g6 xvdb "$rw" "" empty-script
	xl destroy g6 || fail "xl destroy g6"
	wait_for 30 "g6's loop devices to go" eval 'loops_are "$rw" 0 && loops_are "$base" 0'
	wait_for 30 "the daemon to drop g6's disks" users_are 0
	unset LD_LIBRARY_PATH
	daemon_stop
	step "scenario 6: PASS"
else
	step "scenario 6: not run: needs a libxl that runs no script for script= empty (XEN_STAGE_LIBXL)"
fi

echo "XENTEST RESULT PASS"
