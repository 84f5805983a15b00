#!/bin/bash
# run-fuzz.sh TARGET SEED-CORPUS ARTIFACT-DIR [LIBFUZZER OPTIONS] — runs a
# libFuzzer target for a short while (XEN_LOOPD_FUZZ_SECONDS, default 10)
# from a copy of its seed corpus, so the source tree is never written.  A
# crashing input is kept in ARTIFACT-DIR and printed (hex) in the log.
set -euo pipefail
target=$1 seeds=$2 artifacts=$3
shift 3
seconds=${XEN_LOOPD_FUZZ_SECONDS:-10}
name=$(basename "$target")

work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true

rc=0
# -close_fd_mask=3: what the code under test prints (libxlutil explains every
# refused spec) is noise; libFuzzer's report and the sanitizers' still come.
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
	-artifact_prefix="$artifacts/$name-" "$@" "$work/corpus" || rc=$?
if [ "$rc" != 0 ]; then
	echo "run-fuzz.sh: $name failed ($rc); inputs kept in $artifacts:" >&2
	for f in "$artifacts/$name"-*; do
		[ -f "$f" ] || continue
		echo "--- $f" >&2
		od -An -c "$f" | head -n 40 >&2
	done
fi
exit "$rc"
