#!/usr/bin/env bash
# Runs inside the cgroup-v2 VM under a real systemd (run-in-cgroup2-vm.sh --systemd PLACEMENT;
# tests/run-all.sh boots each placement once): the sandbox as a new user would try it where
# systemd hosts put a CI step or a terminal. Checks, against the kernel's and systemd's own state:
#   - a fork bomb under --pids 20 and a 400 MB allocation under --mem 100M are enforced by a
#     cgroup (pids-limit hits, one OOM kill), in a transient scope of the launcher's own;
#   - as root, a run that writes its PID into every cgroup.procs it can see and unlimits every
#     pids.max stays in its cgroup and under its limit (it sees only its own cgroup);
#   - the caller's unit is still running after the OOM kill (systemd's OOMPolicy=stop would
#     have stopped it: this script would then die with 143);
#   - a process beside the launcher in the caller's cgroup stays where it was;
#   - a job bounded by the caller's unit (TasksMax) bounds the runs too;
#   - an overlay run's write to the host's files is listed and discarded;
#   - as a user, #[isolated] expect-tests pass;
#   - after a SIGKILL of the launcher and at the end no sandbox unit, run cgroup or process is
#     left.
#   tests/systemd-placement.sh SANDBOX_BIN ISOLATED_TEST_BIN RUNNER_TEST_BIN
# (the test binaries of tests/isolated.rs and of the harness = false tests/isolated_runner.rs)
set -u
sandbox=$1
isolated=$(realpath "$2")
runner=$(realpath "$3")
placement=${CGV2_SYSTEMD:-?}
status=0
fail() { echo "FAIL ($placement): $*"; status=1; }
if [[ $(id -u) == 0 ]]; then systemctl=(systemctl); else systemctl=(systemctl --user); fi
own_cgroup() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "== systemd placement $placement: uid $(id -u), my cgroup $(own_cgroup $$), systemd $(systemctl --version | head -1)"
"$sandbox" check | grep -E 'systemd|cgroup placement|controller' || fail "sandbox check failed"

# A process beside the launcher, in the caller's cgroup.
sleep 300 &
sibling=$!
sibling_cgroup=$(own_cgroup $sibling)

# 1. Fork bomb under --pids 20.
"$sandbox" run --pids 20 --timeout 5s --json "$scratch/bomb.json" -- sh -c 'for i in $(seq 100); do sleep 30 & done; wait' 2>"$scratch/bomb.err"
python3 - "$scratch/bomb.json" <<'PY' || fail "fork bomb: $(cat "$scratch/bomb.err")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["enforcement"]["pids"] == "cgroup", o
assert o["cgroup_version"] == 2, o
assert o["pids_limit_hits"] >= 1, o
print("fork bomb: pids enforced by the cgroup,", o["pids_limit_hits"], "pids-limit hits, peak pids", o["peak_pids"])
PY

# 2. 400 MB under --mem 100M, then the caller's unit must still be running.
"$sandbox" run --mem 100M --json "$scratch/oom.json" -- sh -c 'head -c 400M /dev/zero | tail' 2>"$scratch/oom.err"
rc=$?
python3 - "$scratch/oom.json" "$rc" <<'PY' || fail "400 MB allocation: $(cat "$scratch/oom.err")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["enforcement"]["memory"] == "cgroup", o
assert o["oom_kills"] >= 1, o
assert sys.argv[2] != "0", "the allocation succeeded"
print("400 MB allocation: OOM kills", o["oom_kills"], "peak mem", o["peak_memory_bytes"], "exit", sys.argv[2])
PY
# systemd reacts to an OOM kill asynchronously: give it the time to stop us, if it would.
sleep 3
echo "after the OOM kill: this script (pid $$) still runs, in $(own_cgroup $$)"

# 2a. As root, contained: inside its scope, a run sees its own cgroup only; every cgroup.procs it
#     can reach is its own, its limits are out of reach, and the forks beyond them are refused.
if [[ $(id -u) == 0 ]]; then
  "$sandbox" run --pids 20 --json "$scratch/contained.json" -- sh -c \
    'for f in $(find /sys/fs/cgroup -name cgroup.procs); do echo $$ > $f; done 2>/dev/null
     for f in $(find /sys/fs/cgroup -name pids.max); do echo max > $f; done 2>/dev/null
     (for i in $(seq 40); do sleep 30 & done) 2>/dev/null; cat /proc/self/cgroup' >"$scratch/contained.out" 2>"$scratch/contained.err"
  python3 - "$scratch/contained.json" "$scratch/contained.out" <<'PY' || fail "contained run: $(cat "$scratch/contained.err")"
import json, sys
o, seen = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
assert seen == "0::/\n", seen
assert (o["exit_code"], o["escaped"], o["limits_changed"]) == (0, [], []), o
assert o["pids_limit_hits"] >= 1 and o["peak_pids"] <= 20, o
print("contained run: sees", seen.strip(), "· pids-limit hits", o["pids_limit_hits"], "· peak pids", o["peak_pids"], "· nothing escaped")
PY
fi

# 2b. An overlay run: a write to the host's files (root: /etc; a user: $HOME) is discarded and
#     listed.
if [[ $(id -u) == 0 ]]; then written=/etc/sandbox-overlay-$$; else written=$HOME/sandbox-overlay-$$; fi
"$sandbox" run --fs overlay --json "$scratch/overlay.json" -- sh -c "echo x > $written" 2>"$scratch/overlay.err"
python3 - "$scratch/overlay.json" "$written" <<'PY' || fail "overlay run: $(cat "$scratch/overlay.err")"
import json, os, sys
o, written = json.load(open(sys.argv[1])), sys.argv[2]
assert o["exit_code"] == 0, o
assert [(c["change"], c["path"]) for c in o["fs_changes"]] == [("created", written)], o["fs_changes"]
assert not os.path.exists(written), written + " reached the host"
print("overlay run: the write to", written, "was listed and discarded")
PY

# 3. The sibling stayed.
[[ -d /proc/$sibling && $(own_cgroup $sibling) == "$sibling_cgroup" ]] \
  && echo "sibling process $sibling stayed in $sibling_cgroup" \
  || fail "the sibling process moved: $sibling_cgroup -> $(own_cgroup $sibling 2>/dev/null)"
kill $sibling; wait $sibling 2>/dev/null

# 4. The runs live in a scope of the launcher's own, sibling of the caller's unit.
where=$("$sandbox" run --json - -- true 2>/dev/null | python3 -c 'import json, sys; print(*json.load(sys.stdin)["cgroup_dirs"])')
[[ $where == *"/sandbox-"*".scope/sandbox/"* ]] && echo "a run's cgroup: $where" \
  || fail "the run is not in a sandbox scope: $where"

# 5. A bounded job: a unit with TasksMax=30 running a launcher whose run asks for 1000 pids.
if [[ $(id -u) == 0 ]]; then run=(systemd-run --quiet --wait --pipe --collect); else run=(systemd-run --user --quiet --wait --pipe --collect); fi
"${run[@]}" -p TasksMax=30 -- "$sandbox" run --pids 1000 --timeout 3s --json "$scratch/bounded.json" -- \
  sh -c 'for i in $(seq 200); do sleep 30 & done; wait' 2>"$scratch/bounded.err" >/dev/null
python3 - "$scratch/bounded.json" <<'PY' || fail "bounded job: $(cat "$scratch/bounded.err")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["enforcement"]["pids"] == "cgroup", o
assert o["peak_pids"] is not None and o["peak_pids"] <= 30, o
print("inside a unit with TasksMax=30, a run with --pids 1000 peaked at", o["peak_pids"], "pids")
PY

# 6. As a user: #[isolated] expect-tests.
if [[ $(id -u) != 0 ]]; then
  for t in fork_bomb_is_contained leak_is_oom_killed hang_is_timed_out requires_a_cgroup; do
    "$isolated" --exact "$t" >"$scratch/t.out" 2>&1 \
      && echo "#[isolated] $t: passed as uid $(id -u)" || { cat "$scratch/t.out"; fail "#[isolated] $t"; }
  done
  # sandbox's runner: its fork servers share one scope.
  "$runner" --test-threads=2 >"$scratch/runner.out" 2>&1 \
    && echo "sandbox's runner: $(grep -c ' ... ok' "$scratch/runner.out") tests passed as uid $(id -u)" \
    || { cat "$scratch/runner.out"; fail "sandbox's runner"; }
fi

# 7. SIGKILL of the launcher: its scope, cgroups and processes go.
"$sandbox" run -- sleep 60 &
launcher=$!
for _ in $(seq 200); do
  [[ $(own_cgroup $launcher 2>/dev/null) == *"/sandbox-"*".scope"* ]] && pgrep -f "^sleep 60" >/dev/null && break
  sleep 0.05
done
scope_dir=/sys/fs/cgroup$(own_cgroup $launcher | sed 's#\(/sandbox-[^/]*\.scope\).*#\1#')
kill -9 $launcher; wait $launcher 2>/dev/null
for _ in $(seq 100); do [[ -d $scope_dir ]] || break; sleep 0.1; done
[[ -d $scope_dir ]] && fail "the killed launcher's scope cgroup $scope_dir is left" || echo "killed launcher: its scope $scope_dir is gone"

# 8. Nothing left: units (also failed ones), cgroups, processes.
sleep 0.5
units=$("${systemctl[@]}" list-units --all --no-legend 'sandbox-*' 2>&1)
[[ -z $units ]] && echo "no sandbox unit left" || fail "units left: $units"
left=$(find /sys/fs/cgroup -type d -name 'sandbox-*.scope' 2>/dev/null)
[[ -z $left ]] || fail "scope cgroups left: $left"
pgrep -f "^sleep (30|60)" >/dev/null && fail "processes left: $(pgrep -af '^sleep (30|60)')"
exit $status
