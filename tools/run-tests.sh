#!/bin/bash
# Builds the tree in a build directory of its own and runs every test suite
# (unit and integration; the integration tests need root).
#
#   tools/run-tests.sh [BUILD_DIR]      default: build-test
#
# With CI=true a skipped test is a failure: CI must run everything.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build-test}
cd "$root"

# check_skips TESTLOG_JSON — list skipped tests; under CI=true, fail.
check_skips() {
	local skipped
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

# run_suites BUILD_DIR [MESON SETUP OPTIONS] — configure (or reuse), build,
# test everything, then check for skips.
run_suites() {
	local d=$1 rc=0
	shift
	if [ -f "$d/build.ninja" ]; then
		meson setup --reconfigure "$d" "$@"
	else
		meson setup "$d" "$@"
	fi
	meson compile -C "$d"
	meson test -C "$d" --print-errorlogs || rc=$?
	check_skips "$d/meson-logs/testlog.json" || rc=1
	return "$rc"
}

rc=0
run_suites "$dir" || rc=$?

# Sanitizer build: the same suites under ASan+UBSan go here, in a second
# build directory, e.g.
#   run_suites "$dir-sanitize" -Db_sanitize=address,undefined -Db_lundef=false || rc=$?

if [ "$rc" != 0 ]; then
	echo "run-tests.sh: FAILED" >&2
fi
exit "$rc"
