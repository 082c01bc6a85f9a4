#!/usr/bin/env bash
# Reliability under load: many sandboxed runs of a mix of endings (normal exit, failing exit, OOM
# kill, fork bomb, timeout), 2 in parallel per core, each outcome checked against what the kernel
# must have reported, then nothing may be left (run cgroup, mount, process). Prints the figures
# RELIABILITY.md records.
#
#   tests/reliability.sh             short mode (CI): 100 runs
#   tests/reliability.sh --long      1,000 runs
#   tests/reliability.sh --runs N    N runs (the cgroup-v2 VM, emulated, uses a few)
# SANDBOX_BIN names a built sandbox binary (inside the VM, where building would be slow).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=100
case ${1:-} in
  --long) runs=1000 ;;
  --runs) runs=$2 ;;
esac
if [[ -n ${SANDBOX_BIN:-} ]]; then
  sandbox=$SANDBOX_BIN
else
  cargo build --release -q -p sandbox
  sandbox=$PWD/target/release/sandbox
fi
work=$(mktemp -d /var/tmp/sandbox-reliability.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat /proc/self/mountinfo > "$work/mountinfo.before"
parallel=$(( $(nproc) * 2 ))

one() {  # one run: index -> "kind ok|BAD detail"
  local i=$1 kind json=$work/$1.json
  case $(( i % 5 )) in
    0) kind=exit0;  "$sandbox" run --json "$json" -- true 2>/dev/null || true ;;
    1) kind=exit101; "$sandbox" run --json "$json" -- sh -c 'exit 101' 2>/dev/null || true ;;
    2) kind=oom;    "$sandbox" run --mem 100M --json "$json" -- dd if=/dev/zero of=/dev/null bs=400M count=1 2>/dev/null || true ;;
    3) kind=bomb;   "$sandbox" run --pids 20 --timeout 1s --json "$json" -- bash -c ':(){ :|:& };: 2>/dev/null; sleep 5' 2>/dev/null || true ;;
    4) kind=timeout; "$sandbox" run --timeout 200ms --json "$json" -- sleep 10 2>/dev/null || true ;;
  esac
  python3 - "$kind" "$json" <<'PY'
import json, sys
kind, path = sys.argv[1:]
try:
    o = json.load(open(path))
except Exception as e:
    print(kind, "BAD no outcome:", e); sys.exit()
checks = {
    "exit0": o["exit_code"] == 0 and o["oom_kills"] == 0,
    "exit101": o["exit_code"] == 101,
    "oom": o["ending"] == "oom_killed" and o["oom_kills"] >= 1 and o["peak_memory_bytes"] <= 100 << 20,
    "bomb": o["pids_limit_hits"] > 0 and (o["peak_pids"] is None or o["peak_pids"] <= 20) and o["timed_out"],
    "timeout": o["timed_out"] and o["signal"] == 9 and o["wall_ms"] < 2000,
}
print(kind, "ok" if checks[kind] else "BAD " + json.dumps(o), o["wall_ms"])
PY
}
export -f one
export sandbox work

echo "reliability: $runs runs, $parallel in parallel, sandbox $sandbox"
start=$(date +%s%N)
seq 0 $((runs - 1)) | xargs -P "$parallel" -I{} bash -c 'one {}' > "$work/results"
echo "wall: $(( ($(date +%s%N) - start) / 1000000000 )) s"
awk '{n[$1]++; if ($2=="ok") ok[$1]++; else bad[$1]++} END {for (k in n) printf "  %-8s %4d runs, %4d as expected, %d not\n", k, n[k], ok[k], bad[k]}' "$work/results" | sort
bad=$(grep -c ' BAD' "$work/results" || true)
# Teardown of a contained fork bomb: the bomb runs end at their 1 s timeout; their wall time minus
# the timeout is what killing and reaping the whole tree cost.
awk '$1=="bomb" {t=$3-1000; if (t>max) max=t; sum+=t; n++} END {if (n) printf "  fork-bomb teardown after the timeout: mean %.1f ms, max %d ms\n", sum/n, max}' "$work/results"
if [[ $bad != 0 ]]; then grep ' BAD' "$work/results" | head -5; fi
tests/leftovers.sh "$work/mountinfo.before"
[[ $bad == 0 ]]
echo "reliability: $runs runs as expected, nothing left behind"
