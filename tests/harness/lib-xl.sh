# lib-xl.sh — sourced after lib.sh by tests that run Debian's real `xl`
# (xen-utils-4.17) instead of the libxl emulation.
#
# xl runs under tests/harness/xl-preload (the hypercall-backed libxenctrl
# calls it makes), against the test's xenstored, with its fixed paths bind
# mounted from $H_TMP/xl in the test's private mount namespace:
#   /etc/xen/xl.conf     a private one
#   /etc/xen/scripts     Debian's stock scripts (copied) plus block-loopd
#   /var/lib/xen         libxl's stored domain configurations
#   /run/xen             libxl's locks and xl devd's pid file
# (/var/log/xen is $H_TMP/log already, see h_init.)
#
#   h_xl_init
#   h_xl_domain 5 [NAME]            a fake running PV domain
#   h_xl block-attach 5 "$(h_xl_disk_spec xvda "$img" w block-loopd)"
#   h_xl_devd_start                 xl devd -F, in the background

: "${H_XL:=/usr/lib/xen-4.17/bin/xl}"

H_XL_DIR=
H_XL_RUNS=0
H_XL_RC=0
H_XL_OUT=
H_XL_ERR=
H_XL_DEVD_PID=

# h_xl_init — check the pieces, build the private /etc/xen, /var/lib/xen
# and /run/xen and mount them over the real ones.  Call after h_init and
# h_xenstored_start.
h_xl_init() {
	local d
	[ -x "$H_XL" ] || h_skip "the real xl is missing ($H_XL; Debian package xen-utils-4.17)"
	[ -n "${H_IN_NS:-}" ] || h_skip "the real xl needs the test's private mount namespace (unshare; H_NO_NS unset)"
	h__find XL_PRELOAD tests/harness/xl-preload.so || true
	if [ -z "${XL_PRELOAD:-}" ] || [ ! -e "$XL_PRELOAD" ]; then
		h_fail "harness library xl-preload.so not found (${XL_PRELOAD:-not set}); build the tree with meson first"
	fi
	[ -n "${BLOCK_LOOPD:-}" ] && [ -x "$BLOCK_LOOPD" ] ||
		h_fail "block-loopd not built (BLOCK_LOOPD=${BLOCK_LOOPD:-unset})"
	[ -d /etc/xen/scripts ] && [ -x /etc/xen/scripts/block ] ||
		h_skip "Debian's stock hotplug scripts are missing (/etc/xen/scripts; package xen-utils-common)"

	H_XL_DIR="$H_TMP/xl"
	mkdir -p "$H_XL_DIR/etc" "$H_XL_DIR/lib" "$H_XL_DIR/run" "$H_XL_DIR/domains"
	# A copy, not links: the links would point into the mount that hides them.
	cp -a /etc/xen/scripts "$H_XL_DIR/scripts"
	ln -s "$BLOCK_LOOPD" "$H_XL_DIR/scripts/block-loopd"
	cat >"$H_XL_DIR/etc/xl.conf" <<-EOF
	# xl.conf of a test: no memory to balloon, no lock file outside the test.
	autoballoon="off"
	lockfile="$H_XL_DIR/run/xl.lock"
	EOF

	mkdir -p /var/lib/xen /run/xen
	for d in "etc/xl.conf:/etc/xen/xl.conf" "scripts:/etc/xen/scripts" \
		 "lib:/var/lib/xen" "run:/run/xen"; do
		mount --bind "$H_XL_DIR/${d%%:*}" "${d#*:}"
		h_on_cleanup "umount -l ${d#*:}"
	done

	# What xen-init-dom0 writes besides the domid (lib.sh writes that).
	xenstore-write /local/domain/0/vm /vm/00000000-0000-0000-0000-000000000000 \
		/vm/00000000-0000-0000-0000-000000000000/uuid 00000000-0000-0000-0000-000000000000 \
		/vm/00000000-0000-0000-0000-000000000000/name Domain-0
	export XL_PRELOAD_DOMAINS="$H_XL_DIR/domains"
}

# h_xl_uuid DOMID — the UUID of a fake domain (the libxl emulation's too).
h_xl_uuid() { printf '00000000-0000-0000-0000-%012x\n' "$1"; }

# h__xl_mknod PATH PERMS... — libxl__xs_mknod: an empty node with PERMS
# (xenstore-chmod's letters: n0 = owner 0, r5 = domain 5 may read).
h__xl_mknod() {
	local p=$1
	shift
	xenstore-write "$p" ""
	xenstore-chmod "$p" "$@"
}

# h_xl_domain DOMID [NAME] — a fake running PV domain, as `xl create` would
# have left it: libxl__domain_make's xenstore directories with their
# permissions, what the build adds that device handling reads, and libxl's
# stored domain configuration (the JSON libxl writes to
# /var/lib/xen/userdata-d.<domid>.<uuid>.libxl-json), with no devices.
# The preload then reports it as running.
h_xl_domain() {
	local domid=$1 name=${2:-guest$1} uuid dom vm
	[ -n "$H_XL_DIR" ] || h_fail "h_xl_domain before h_xl_init"
	case $domid in '' | *[!0-9]* | 0) h_fail "h_xl_domain: bad domid '$domid'" ;; esac
	uuid=$(h_xl_uuid "$domid")
	dom=/local/domain/$domid
	vm=/vm/$uuid

	# libxl__domain_make: dom0 owns, the guest reads (ro) or owns (rw).
	xenstore-rm "$dom" 2>/dev/null || true
	xenstore-rm "$vm" 2>/dev/null || true
	xenstore-rm "/libxl/$domid" 2>/dev/null || true
	local ro=(n0 "r$domid") rw=("n$domid") no=(n0)
	h__xl_mknod "$dom" "${ro[@]}"
	h__xl_mknod "$vm" "${ro[@]}"
	h__xl_mknod "/libxl/$domid" "${no[@]}"
	h__xl_mknod "/libxl/$domid/device" "${no[@]}"
	xenstore-write "$dom/vm" "$vm" "$dom/name" "$name"
	h__xl_mknod "$dom/cpu" "${ro[@]}"
	h__xl_mknod "$dom/memory" "${ro[@]}"
	h__xl_mknod "$dom/device" "${ro[@]}"
	h__xl_mknod "$dom/device/suspend/event-channel" "${rw[@]}"
	h__xl_mknod "$dom/control" "${ro[@]}"
	local n
	for n in shutdown feature-poweroff feature-reboot feature-suspend sysrq; do
		h__xl_mknod "$dom/control/$n" "${rw[@]}"
	done
	for n in data drivers feature attr error; do
		h__xl_mknod "$dom/$n" "${rw[@]}"
	done
	xenstore-write "$vm/uuid" "$uuid" "$vm/name" "$name" \
		"$dom/control/platform-feature-multiprocessor-suspend" 1 \
		"$dom/control/platform-feature-xs_reset_watches" 1 \
		"/libxl/$domid/type" pv "/libxl/$domid/dm-version" qemu_xen
	# The build (libxl__build_pre/post, xs_introduce_domain).
	xenstore-write "$dom/domid" "$domid" "$dom/memory/static-max" 131072 \
		"$dom/memory/target" 131072 "$dom/memory/videoram" 0 \
		"$dom/cpu/0/availability" online "$dom/image/os_type" linux

	# The stored configuration, as libxl_domain_config_gen_json writes it for
	# a PV guest (memory = 128, vcpus = 1) after libxl__domain_config_setdefault:
	# fields at their zero default (on_poweroff = destroy, ...) are left out.
	cat >"$H_XL_DIR/lib/userdata-d.$domid.$uuid.libxl-json" <<-EOF
	{
	    "c_info": {
	        "type": "pv",
	        "name": "$name",
	        "uuid": "$uuid",
	        "run_hotplug_scripts": "True",
	        "driver_domain": "False",
	        "passthrough": "disabled",
	        "xend_suspend_evtchn_compat": "False"
	    },
	    "b_info": {
	        "max_vcpus": 1,
	        "avail_vcpus": [
	            0
	        ],
	        "numa_placement": "True",
	        "max_memkb": 131072,
	        "target_memkb": 131072,
	        "video_memkb": 0,
	        "shadow_memkb": 0,
	        "iommu_memkb": 0,
	        "localtime": "False",
	        "disable_migrate": "False",
	        "max_grant_frames": 64,
	        "max_maptrack_frames": 1024,
	        "max_grant_version": 2,
	        "device_model_version": "qemu_xen",
	        "device_model_stubdomain": "False",
	        "sched_params": {
	            "sched": "credit2",
	            "weight": 256,
	            "cap": 0
	        },
	        "claim_mode": "True",
	        "event_channels": 1023,
	        "kernel": "/boot/vmlinuz",
	        "dm_restrict": "False",
	        "type.pv": {
	            "slack_memkb": 0,
	            "e820_host": "False"
	        },
	        "arch_arm": {

	        },
	        "arch_x86": {
	            "msr_relaxed": "False"
	        },
	        "vpmu": "False"
	    },
	    "on_reboot": "restart",
	    "on_soft_reset": "soft_reset"
	}
	EOF
	# libxl stores the string with its terminating NUL.
	printf '\0' >>"$(h_xl_config "$domid")"
	printf '%s\n' "$uuid" >"$H_XL_DIR/domains/$domid"
}

# h_xl_config DOMID — the stored configuration's path.
h_xl_config() { printf '%s/lib/userdata-d.%s.%s.libxl-json\n' "$H_XL_DIR" "$1" "$(h_xl_uuid "$1")"; }

# h_xl ARGS — run the real xl to completion; its stdout goes to $H_XL_OUT
# and its stderr to $H_XL_ERR (both new files for each run, also appended
# to $H_TMP/log/xl.log).  Returns xl's status, also kept in H_XL_RC.  The
# pid is registered while it runs, so a test killed meanwhile kills it.
h_xl() {
	local pid
	[ -n "$H_XL_DIR" ] || h_fail "h_xl before h_xl_init"
	H_XL_RUNS=$((H_XL_RUNS + 1))
	H_XL_OUT="$H_XL_DIR/out.$H_XL_RUNS"
	H_XL_ERR="$H_XL_DIR/err.$H_XL_RUNS"
	# libxl gives up on its own long before this (10 s waits, 40 s scripts);
	# the preload leaves timeout alone (it drops itself from LD_PRELOAD).
	timeout -k 5 120 env LD_PRELOAD="$XL_PRELOAD" "$H_XL" "$@" </dev/null >"$H_XL_OUT" 2>"$H_XL_ERR" &
	pid=$!
	h_register_pid "$pid" "xl $1"
	H_XL_RC=0
	wait "$pid" || H_XL_RC=$?
	h_unregister_pid "$pid"
	{
		printf '== xl %s: status %s\n' "$*" "$H_XL_RC"
		cat "$H_XL_OUT" "$H_XL_ERR"
	} >>"$H_TMP/log/xl.log"
	return "$H_XL_RC"
}

# h_xl_ok ARGS — h_xl, and fail the test with xl's stderr if it fails.
h_xl_ok() {
	h_xl "$@" || h_fail "xl $* exited $H_XL_RC: $(cat "$H_XL_ERR")"
}

# h_xl_devd_start [XL DEVD OPTIONS] — `xl devd -F` in the background (the
# foreground mode: it never daemonizes, so its pid is the one registered);
# sets H_XL_DEVD_PID and H_XL_DEVD_LOG.  XL_PRELOAD_SELF_DOMID=N in the
# environment makes it a driver domain's devd (see xl-preload.c).
h_xl_devd_start() {
	H_XL_DEVD_LOG="$H_TMP/log/xl-devd.log"
	# Not through a function: a function run in the background is a
	# subshell whose pid is not xl's (killing it would leave devd running).
	# XENSTORED_PATH (h_xenstored_start exports it) leads xl to the test's
	# xenstored.
	env LD_PRELOAD="$XL_PRELOAD" "$H_XL" -vvv devd -F "$@" </dev/null >>"$H_XL_DEVD_LOG" 2>&1 &
	H_XL_DEVD_PID=$!
	h_register_pid "$H_XL_DEVD_PID" "xl devd"
	# devd says its request is in progress once its watch is set.
	h_wait_until 10 "xl devd to set its watch" \
		grep -q 'libxl_device_events_handler: .*inprogress' "$H_XL_DEVD_LOG"
	h__pid_alive "$H_XL_DEVD_PID" || h_fail "xl devd exited (log: $H_XL_DEVD_LOG)"
}

h_xl_devd_stop() {
	[ -n "$H_XL_DEVD_PID" ] || return 0
	h_kill_pid "$H_XL_DEVD_PID"
	H_XL_DEVD_PID=
}

# h_xl_disk_spec VDEV PATH MODE [SCRIPT [MORE]] — xl's disk specification;
# MODE r or w; SCRIPT "" for libxl's default (the stock block script); MORE
# is more "key=value," text (backend=N, ...).  target= comes last: xl takes
# the rest of the specification as the path.
h_xl_disk_spec() {
	local access=ro
	[ "$3" = w ] && access=rw
	printf 'format=raw,vdev=%s,access=%s,%s%starget=%s\n' "$1" "$access" "${4:+script=$4,}" \
		"${5:+${5%,},}" "$2"
}

# h_xl_blkback_start GUEST [EMULATOR OPTIONS] — the blkback emulator with
# the guests' side in mode GUEST: running (blkfront connects as soon as the
# backend is in InitWait: a hot-plug), building (connects only when told)
# or none (no PV drivers: never).
h_xl_blkback_start() {
	local guest=$1
	shift
	h_blkback_start --guest "$guest" "$@"
}

# h_xl_be DOMID VDEV [BACKEND DOMID] — the backend directory xl writes.
h_xl_be() { printf '/local/domain/%s/backend/vbd/%s/%s\n' "${3:-0}" "$1" "$(h_devid "$2")"; }

# h_xl_assert_err_has TEXT — xl's last stderr contains TEXT.
h_xl_assert_err_has() {
	grep -qF -- "$1" "$H_XL_ERR" || h_fail "xl's stderr lacks \"$1\": $(cat "$H_XL_ERR")"
}
