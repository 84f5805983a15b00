#!/bin/bash
# Builds the tree and runs every test suite (unit and integration; the
# integration tests need root), in stages, each in a build directory of its
# own:
#
#   default   BUILD_DIR: every suite but the soak (tests/soak/README.md),
#             the package and the real-Xen suite, then the integration
#             suite again on oxenstored (the test setup `oxenstored`,
#             tests/harness/README.md).
#   valgrind  the same build under valgrind memcheck: every test program
#             of ours (unit, loop engine and cache), and the daemon itself
#             in a few integration tests; no error, no definite leak.
#   asan      BUILD_DIR-asan, built with -Db_sanitize=address,undefined:
#             every suite but the soak, and the integration suite on
#             oxenstored (many-disks with 1200 guests, still more than a
#             reply of 4096 bytes lists); any sanitizer report fails it.
#   fuzz      BUILD_DIR-fuzz, built with clang and -Dfuzz=true: the fuzz
#             targets over their corpora and for a short run each
#             (tests/fuzz/README.md).  Skipped when clang is missing (a
#             failure under CI=true).
#   package   the Debian package (debian/), with BUILD_DIR's test harness:
#             dpkg-buildpackage from a clean copy of the tree, lintian, the
#             file list; install, upgrade with a held device, remove and
#             purge in a throwaway root (tests/package/package.sh).
#   libxl     libxenlight from Debian's Xen source package with
#             contrib/libxl/4.17 applied, built in BUILD_DIR-libxl (kept:
#             a rerun rebuilds only what changed; tests/libxl/build-libxl.sh),
#             then the libxl suite: Debian's real xl with it, against the
#             default build (contrib/libxl/README.md).  The other stages
#             leave that suite out.
#   xen       BUILD_DIR: the real-Xen suite (tests/xen/README.md), once:
#             Xen 4.17, dom0 and PV guests under QEMU, a few minutes.  Its
#             console log and timings stay in BUILD_DIR/tests/xen/stage.
#
#   tools/run-tests.sh [BUILD_DIR]      default: build-test
#
# RUN_TESTS_STAGES="default asan" runs only those stages.  The duration of
# every stage is printed at the end.  With CI=true a skipped test is a
# failure: CI must run everything.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build-test}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
stages=${RUN_TESTS_STAGES:-default valgrind asan fuzz package libxl xen}
cd "$root"

# The integration tests whose daemon runs under valgrind.
valgrind_daemon_tests=(watch-one-disk watch-rw control-socket control-group fdset fdset-limits bad-params bad-access bad-races
	xenstored-restart xenstored-late)
valgrind_opts=(--leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1)

# Counts over every meson test run of every stage, for the closing line.
n_passed=0
n_failed=0
n_skipped=0

# tally TESTLOG_JSON — add a meson test run's results to the counts.
tally() {
	local p f k
	read -r p f k < <(python3 - "$1" <<'PY'
import json, sys
n = {"OK": 0, "FAIL": 0, "SKIP": 0}
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            n["OK"] += 1
        elif r == "SKIP":
            n["SKIP"] += 1
        else:
            n["FAIL"] += 1
print(n["OK"], n["FAIL"], n["SKIP"])
PY
	) || return 0
	n_passed=$((n_passed + p))
	n_failed=$((n_failed + f))
	n_skipped=$((n_skipped + k))
}

# check_skips TESTLOG_JSON — count the run, list skipped tests; under
# CI=true, fail.
check_skips() {
	local skipped
	[ -f "$1" ] || { echo "*** no test log at $1" >&2; return 1; }
	tally "$1"
	skipped=$(python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        t = json.loads(line)
        if t.get("result") == "SKIP":
            print(t.get("name"))
PY
	)
	[ -z "$skipped" ] && return 0
	printf '\n*** skipped tests:\n%s\n' "$(printf '%s\n' "$skipped" | sed 's/^/***   /')" >&2
	if [ "${CI:-}" = true ]; then
		echo "*** CI=true: skipped tests count as failures" >&2
		return 1
	fi
	return 0
}

# setup BUILD_DIR [MESON SETUP OPTIONS] — configure, or reconfigure.
setup() {
	local d=$1
	shift
	if [ -f "$d/build.ninja" ]; then
		meson setup --reconfigure "$d" "$@"
	else
		meson setup "$d" "$@"
	fi
}

# run_suites BUILD_DIR [MESON TEST OPTIONS] — test (the soak, the package
# and the real-Xen suite left out), then check for skips.
run_suites() {
	local d=$1 rc=0
	shift
	meson test -C "$d" --no-rebuild --print-errorlogs --no-suite soak --no-suite package --no-suite libxl --no-suite xen "$@" || rc=$?
	check_skips "$d/meson-logs/testlog.json" || rc=1
	return "$rc"
}

# run_oxenstored BUILD_DIR [MESON TEST OPTIONS] — the integration suite
# again, on oxenstored, with a log of its own; then check for skips.
run_oxenstored() {
	local d=$1 rc=0
	shift
	printf '\n----- the integration suite on oxenstored -----\n'
	meson test -C "$d" --no-rebuild --print-errorlogs --setup oxenstored --suite integration \
		--logbase integration "$@" || rc=$?
	# meson names the log after the setup too.
	check_skips "$d/meson-logs/integration-oxenstored.json" || rc=1
	return "$rc"
}

stage_default() {
	local rc=0
	setup "$dir"
	meson compile -C "$dir"
	run_suites "$dir" || rc=$?
	run_oxenstored "$dir" || rc=$?
	return "$rc"
}

# Memcheck: the unit tests as they are; the daemon through lib-daemon.sh's
# H_DAEMON_WRAPPER, one log per daemon run, each of which must show a clean
# summary after its SIGTERM.
stage_valgrind() {
	local vg=$dir/valgrind rc=0 f n=0
	command -v valgrind >/dev/null || { echo "valgrind is missing (tools/install-deps.sh)" >&2; return 1; }
	[ -f "$dir/build.ninja" ] || setup "$dir"
	meson compile -C "$dir"
	rm -rf "$vg"
	mkdir -p "$vg"
	# Every test that is a program of ours (the unit tests, the loop engine
	# and cache tests); a wrapper around bash would only check bash.
	mapfile -t compiled < <(meson introspect "$dir" --tests | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["cmd"] and t["cmd"][0].startswith(sys.argv[1] + "/") and not t["name"].startswith("fuzz-"):
        print(t["name"])' "$dir")
	# Each run's own log (meson names a wrapped run's log after the
	# wrapper: <logbase>-valgrind.json).
	rm -f "$dir"/meson-logs/vg-*.json
	meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 4 --logbase vg-programs \
		--wrapper "valgrind ${valgrind_opts[*]} --quiet" "${compiled[@]}" || rc=$?
	check_skips "$dir/meson-logs/vg-programs-valgrind.json" || rc=1
	H_DAEMON_WRAPPER="valgrind ${valgrind_opts[*]} --log-file=$vg/xen-loopd.%p.log" \
		meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 4 --logbase vg-daemon \
		"${valgrind_daemon_tests[@]}" || rc=$?
	check_skips "$dir/meson-logs/vg-daemon.json" || rc=1
	for f in "$vg"/xen-loopd.*.log; do
		[ -e "$f" ] || continue
		n=$((n + 1))
		if ! grep -q 'ERROR SUMMARY: 0 errors' "$f" || grep -Eq 'definitely lost: [1-9]' "$f"; then
			echo "*** valgrind: errors or definite leaks in the daemon ($f):" >&2
			cat "$f" >&2
			rc=1
		fi
	done
	if [ "$n" = 0 ] && [ "$(id -u)" = 0 ]; then
		echo "*** valgrind: no daemon ran under valgrind" >&2
		rc=1
	fi
	echo "valgrind: $n daemon runs checked"
	return "$rc"
}

# ASan+UBSan: every report goes to a file of its own (processes the tests
# kill at the end report leaks too), and any file fails the stage.
stage_asan() {
	local d=$dir-asan logs rc=0 f
	logs=$d/sanitizer-logs
	setup "$d" -Db_sanitize=address,undefined -Db_lundef=false
	meson compile -C "$d"
	rm -rf "$logs"
	mkdir -p "$logs"
	chmod 1777 "$logs"          # tests run clients as nobody too
	export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:abort_on_error=0"
	export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
	H_MANY_DISKS=1200 run_suites "$d" --timeout-multiplier 2 || rc=$?
	H_MANY_DISKS=1200 run_oxenstored "$d" --timeout-multiplier 2 || rc=$?
	unset ASAN_OPTIONS UBSAN_OPTIONS
	for f in "$logs"/*; do
		[ -e "$f" ] || continue
		echo "*** sanitizer report $f:" >&2
		cat "$f" >&2
		rc=1
	done
	return "$rc"
}

stage_fuzz() {
	local d=$dir-fuzz targets r=0
	if ! command -v clang >/dev/null; then
		echo "*** clang is missing: no fuzz build (tools/install-deps.sh installs it)" >&2
		[ "${CI:-}" = true ] && return 1
		return 0
	fi
	CC=clang setup "$d" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	# Only the fuzz targets: the rest of the tree is tested elsewhere.
	mapfile -t targets < <(meson introspect "$d" --targets | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["name"].startswith("fuzz-"):
        print(t["name"])')
	[ "${#targets[@]}" -gt 0 ] || { echo "*** no fuzz targets in $d" >&2; return 1; }
	meson compile -C "$d" "${targets[@]}"
	meson test -C "$d" --no-rebuild --print-errorlogs --suite fuzz || r=$?
	tally "$d/meson-logs/testlog.json"
	return "$r"
}

# The package once, with the default build's harness (it builds the
# package itself, from a clean copy of the tree).
stage_package() {
	local rc=0
	[ -f "$dir/build.ninja" ] || setup "$dir"
	meson compile -C "$dir"
	meson test -C "$dir" --no-rebuild --print-errorlogs --suite package --logbase package || rc=$?
	check_skips "$dir/meson-logs/package.json" || rc=1
	return "$rc"
}

# The patched libxenlight, then Debian's real xl with it.  The build's own
# time is printed too: the first run fetches and configures Xen's source.
stage_libxl() {
	local t=$SECONDS rc=0
	tests/libxl/build-libxl.sh "$dir-libxl" || return 1
	echo "libxl: libxenlight built in $((SECONDS - t)) s"
	[ -f "$dir/build.ninja" ] || setup "$dir"
	meson compile -C "$dir"
	XEN_LIBXL_DIR="$dir-libxl/lib" meson test -C "$dir" --no-rebuild --print-errorlogs \
		--suite libxl --logbase libxl || rc=$?
	check_skips "$dir/meson-logs/libxl.json" || rc=1
	return "$rc"
}

# The real-Xen suite, in the default build.
stage_xen() {
	local rc=0
	[ -f "$dir/build.ninja" ] || setup "$dir"
	meson compile -C "$dir"
	meson test -C "$dir" --no-rebuild --print-errorlogs --verbose --suite xen --logbase xen || rc=$?
	check_skips "$dir/meson-logs/xen.json" || rc=1
	return "$rc"
}

rc=0
summary=()
for s in $stages; do
	case $s in
	default | valgrind | asan | fuzz | package | libxl | xen) ;;
	*) echo "run-tests.sh: unknown stage $s" >&2; exit 2 ;;
	esac
	printf '\n===== stage %s =====\n' "$s"
	start=$SECONDS
	src=0
	"stage_$s" || src=$?
	summary+=("$(printf '%-9s %-6s %4d s' "$s" "$([ "$src" = 0 ] && echo ok || echo FAILED)" $((SECONDS - start)))")
	[ "$src" = 0 ] || rc=1
done

printf '\n===== run-tests.sh: stages =====\n'
printf '%s\n' "${summary[@]}"
printf 'tests: %d passed, %d failed, %d skipped\n' "$n_passed" "$n_failed" "$n_skipped"
if [ "$rc" != 0 ]; then
	echo "run-tests.sh: FAILED" >&2
fi
exit "$rc"
