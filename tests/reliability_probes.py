#!/usr/bin/env python3
"""The measuring parts of tests/reliability.sh, one subcommand per phase; each prints one or a
few lines of figures (the script's table) and exits 1 when a check failed, after saying which.
Scratch files go to $RELIABILITY_WORK.

  cli RUNS PARALLEL WALL_MS
      checks the outcomes of the script's CLI mix (<index>.json)
  isolated FIXTURES REPORT THREADS EXPECTED_PER_KIND [RUNNER ARGS...]
      runs the #[isolated] fixtures runner, samples its memory and descriptors (and those of its
      fork servers, which are the processes that create the sandboxes), and checks every verdict
      in its --report JSON
  bombs SANDBOX FIXTURES RUNS PIDS TIMEOUT_S
      the bash fork bomb and the Rust fork loop under --pids, serially, with a fast sampler of
      the processes this run adds to the host
  oomgroup SANDBOX FIXTURES RUNS
      4 processes of 40 MiB each under --mem 100M: OOM kills, peak, and the whole group ends
  kills SANDBOX FIXTURES RUNS BOUND_MS
      the launcher SIGKILLed at random points (set-up, command running, teardown, and the end of
      teardown), then nothing of its run may be left but its cgroup, which the next start removes
  pdeathsig SANDBOX
      the launcher SIGKILLed before the sandbox's init armed its parent-death signal (strace)
"""
import ctypes
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import time

WORK = os.environ.get("RELIABILITY_WORK", "/var/tmp")
MIB = 1 << 20
failures = []


def fail(message):
    failures.append(message)


def finish():
    for message in failures[:10]:
        print("    FAILED: " + message)
    if len(failures) > 10:
        print(f"    ... and {len(failures) - 10} more failures")
    sys.exit(1 if failures else 0)


def pids():
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields after the last ')'.
    return int(stat[stat.rfind(")") + 2:].split(" ", 2)[1])


def ppid_map():
    parents = {}
    for pid in pids():
        parent = ppid_of(pid)
        if parent is not None:
            parents[pid] = parent
    return parents


def pid_ns(pid):
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def status(pid):
    """VmRSS, VmHWM, RssAnon (KiB) and the number of open descriptors of pid, apart ("fds") from
    those of cgroup control files ("cgroup_fds": a fork server keeps the files of the cgroup it
    reuses open, more or fewer with that cgroup's history); None when it is gone."""
    figures = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon"):
                    figures[key] = int(value.split()[0])
        targets = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
        figures["cgroup_fds"] = sum(t.startswith("/sys/fs/cgroup/") for t in targets)
        figures["fds"] = len(targets) - figures["cgroup_fds"]
    except OSError:
        return None
    return figures if len(figures) == 5 else None


def mib(kib):
    return f"{kib / 1024:.1f}"


# --------------------------------------------------------------------------------------------
# The CLI mix (run by the script, 2 in parallel per core): every outcome against what the kernel
# must have reported.

def cmd_cli(runs, parallel, wall_ms):
    runs = int(runs)
    kinds = ["exit0", "exit101", "oom", "bomb", "timeout"]
    counts = {kind: [0, 0] for kind in kinds}
    teardown = []
    for i in range(runs):
        kind = kinds[i % 5]
        counts[kind][0] += 1
        try:
            with open(f"{WORK}/{i}.json") as f:
                o = json.load(f)
        except (OSError, ValueError) as err:
            fail(f"CLI run {i} ({kind}): no outcome ({err})")
            continue
        ok = {
            "exit0": o["exit_code"] == 0 and o["oom_kills"] == 0,
            "exit101": o["exit_code"] == 101,
            "oom": o["ending"] == "oom_killed" and o["oom_kills"] >= 1 and o["peak_memory_bytes"] <= 100 * MIB,
            "bomb": o["pids_limit_hits"] > 0 and (o["peak_pids"] is None or o["peak_pids"] <= 20) and o["timed_out"],
            "timeout": o["timed_out"] and o["signal"] == 9 and o["wall_ms"] < 2000,
        }[kind]
        if ok:
            counts[kind][1] += 1
            if kind == "bomb":
                # Teardown of a contained fork bomb: wall time minus its timeout (killing the
                # PID namespace's init, the kernel killing and reaping the tree, reading the
                # counters, removing the cgroup).
                teardown.append(o["wall_ms"] - o["limits"]["timeout_ms"])
        else:
            fail(f"CLI run {i} ({kind}): {json.dumps(o)[:400]}")
    as_expected = sum(ok for _, ok in counts.values())
    print(f"  {'CLI mix, ' + parallel + ' in parallel':<34} {runs:>5} {as_expected:>6}   wall {int(wall_ms) / 1000:.0f} s · "
          + " ".join(f"{k} {ok}/{n}" for k, (n, ok) in counts.items())
          + (f" · fork-bomb teardown after its timeout: mean {statistics.mean(teardown):.1f} ms, max {max(teardown)} ms"
             if teardown else ""))


# --------------------------------------------------------------------------------------------
# #[isolated] tests through the runner: verdicts from --report, memory and descriptors sampled.

KINDS = ["pass", "panics", "oom", "fork_bomb", "timeout_expected", "timeout_unexpected"]


def check_test(kind, t):
    """Whether one report entry is what this fixture must produce."""
    message = t.get("message") or ""
    peak_ok = t.get("peak_memory_bytes") is not None and t["peak_memory_bytes"] <= 100 * MIB
    return {
        "pass": t["verdict"] == "passed" and t["ending"] == "exited" and t["exit_code"] == 0 and t["oom_kills"] == 0,
        "panics": t["verdict"] == "failed" and t["exit_code"] == 101
        and message.startswith("isolated test failed: panicked: reliability fixture panic"),
        "oom": t["verdict"] == "passed" and t["ending"] == "oom_killed" and t["oom_kills"] >= 1 and peak_ok,
        "fork_bomb": t["verdict"] == "passed" and t["pids_limit_hits"] > 0 and not t["timed_out"]
        and (t["peak_pids"] is None or t["peak_pids"] <= 20),
        "timeout_expected": t["verdict"] == "passed" and t["timed_out"] and t["signal"] == 9 and t["wall_ms"] < 2000,
        "timeout_unexpected": t["verdict"] == "failed" and t["timed_out"]
        and message.startswith("isolated test failed: timed out after 200 ms (killed)"),
    }[kind]


def window(samples, low, high):
    """The samples taken while low..high of the tests had finished (at least 3 samples)."""
    chosen = [s for s in samples if low <= s[0] < high]
    return chosen if len(chosen) >= 3 else None


def cmd_isolated(fixtures, report, threads, per_kind, *runner_args):
    threads, per_kind = int(threads), int(per_kind)
    total = per_kind * len(KINDS)
    output_path = report + ".out"
    env = dict(os.environ, RUST_BACKTRACE="0")
    started = time.monotonic()
    with open(output_path, "w") as output:
        runner = subprocess.Popen([fixtures, "--test-threads", str(threads), "--report", report, *runner_args],
                                  stdout=output, stderr=subprocess.STDOUT, env=env)
    # (fraction of tests finished, runner's figures, {fork server pid: figures})
    samples = []
    while runner.poll() is None:
        try:
            with open(output_path) as f:
                done = sum(1 for line in f if line.startswith("test "))
        except OSError:
            done = 0
        main = status(runner.pid)
        servers = {}
        for pid, parent in ppid_map().items():
            if parent == runner.pid:
                figures = status(pid)
                if figures:
                    servers[pid] = figures
        if main:
            samples.append((done / total, main, servers))
        time.sleep(0.05)
    wall = time.monotonic() - started
    # Nothing of the runner may outlive it: no fork server, sandboxed test or fork-bomb child
    # (they sleep 30 s) runs the fixtures binary any more.
    binary = os.path.realpath(fixtures)
    deadline = time.monotonic() + 2
    while True:
        left = []
        for pid in pids():
            try:
                if os.readlink(f"/proc/{pid}/exe") == binary:
                    left.append(pid)
            except OSError:
                pass
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if left:
        fail(f"{len(left)} processes of the fixtures binary outlived the runner by 2 s: {left[:5]}")

    try:
        with open(report) as f:
            tests = json.load(f)["tests"]
    except (OSError, ValueError) as err:
        fail(f"no report from the runner ({err}); its output: {output_path}")
        tests = []
    counts = {kind: [0, 0] for kind in KINDS}
    names = set()
    for t in tests:
        names.add(t["name"])
        kind = t["name"].rsplit("::", 1)[-1]
        if kind not in counts:
            fail(f"unknown test {t['name']}")
            continue
        counts[kind][0] += 1
        if check_test(kind, t):
            counts[kind][1] += 1
        else:
            fail(f"{t['name']}: {json.dumps(t)[:400]}")
    if len(tests) != total or len(names) != total:
        fail(f"the report has {len(tests)} tests ({len(names)} names), expected {total}")
    for kind, (n, ok) in counts.items():
        if n != per_kind:
            fail(f"{n} {kind} tests in the report, expected {per_kind}")
    as_expected = sum(ok for _, ok in counts.values())
    print(f"  {'#[isolated] runner, ' + str(threads) + ' threads':<34} {len(tests):>5} {as_expected:>6}   "
          f"wall {wall:.1f} s · " + " ".join(f"{k} {ok}/{n}" for k, (n, ok) in counts.items()))

    # Memory and descriptors: the start is while 20-35 % of the tests had finished (the fork
    # servers are up and have run each kind of test), the end while 75-95 % had (before the
    # servers exit one by one). Growth is judged on RssAnon, the heap and stacks: a fork server
    # is a fresh copy of the runner, whose VmRSS also grows as it first touches code (file
    # pages), which is no leak (a server that got its first test late showed 0.3 -> 1.8 MiB).
    start, end = window(samples, 0.20, 0.35), window(samples, 0.75, 0.95)
    if not start or not end:
        fail(f"too few samples of the runner to compare its start and end ({len(samples)} in all)")
        return
    rss = lambda w, f: statistics.median(f(s) for s in w)
    main_rss = (rss(start, lambda s: s[1]["VmRSS"]), rss(end, lambda s: s[1]["VmRSS"]))
    main_anon = (rss(start, lambda s: s[1]["RssAnon"]), rss(end, lambda s: s[1]["RssAnon"]))
    main_fds = (statistics.mode(s[1]["fds"] for s in start), statistics.mode(s[1]["fds"] for s in end))
    main_hwm = max(s[1]["VmHWM"] for s in samples)
    tests_between = (statistics.median(s[0] for s in end) - statistics.median(s[0] for s in start)) * total
    per_test = (main_anon[1] - main_anon[0]) * 1024 / max(tests_between, 1)
    # The fork servers, each followed from its own first to last sample in the two windows.
    server_pids = set().union(*(s[2] for s in start)) & set().union(*(s[2] for s in end))
    server_rss, server_fds, server_cgroup_fds = [], [], []
    for pid in sorted(server_pids):
        a = [s[2][pid] for s in start if pid in s[2]]
        b = [s[2][pid] for s in end if pid in s[2]]
        server_rss.append((statistics.median(x["VmRSS"] for x in a), statistics.median(x["VmRSS"] for x in b),
                           max(x["VmHWM"] for x in a + b),
                           statistics.median(x["RssAnon"] for x in b) - statistics.median(x["RssAnon"] for x in a)))
        # The most frequent count: what a server holds while it waits for a test's sandbox (the
        # same for every test; for a moment between tests, and while setting up one, it differs).
        server_fds.append((statistics.mode(x["fds"] for x in a), statistics.mode(x["fds"] for x in b)))
        server_cgroup_fds.append(max(x["cgroup_fds"] for x in a + b))
    if not server_pids:
        fail("no fork server of the runner was seen in both windows")
    grow_kib = max((anon for *_, anon in server_rss), default=0)
    print(f"    runner process: RSS {mib(main_rss[0])} -> {mib(main_rss[1])} MiB (+{per_test / 1024:.1f} KiB/test kept "
          f"for the report, anon; bound 16), VmHWM {mib(main_hwm)} MiB, fds {main_fds[0]} -> {main_fds[1]}")
    print(f"    {len(server_pids)} fork servers: RSS "
          + ", ".join(f"{mib(a)}->{mib(b)}" for a, b, *_ in server_rss)
          + f" MiB (anon growth max {grow_kib:.0f} KiB, bound 512), VmHWM max {mib(max((h for _, _, h, _ in server_rss), default=0))} MiB, fds "
          + ", ".join(f"{a}->{b}" for a, b in server_fds)
          + f" (+ cgroup control files kept open: max {max(server_cgroup_fds, default=0)}, bound 32)")
    if main_fds[1] > main_fds[0]:
        fail(f"the runner's descriptors grew from {main_fds[0]} to {main_fds[1]}")
    if per_test > 16 * 1024:
        fail(f"the runner's RssAnon grew by {per_test / 1024:.1f} KiB per test (bound 16)")
    for (a, b), pid in zip(server_fds, sorted(server_pids)):
        if b > a:
            fail(f"fork server {pid}: descriptors grew from {a} to {b}")
    if grow_kib > 512:
        fail(f"a fork server's RssAnon grew by {grow_kib:.0f} KiB (bound 512)")
    # The files of one kept cgroup (three v1 hierarchies); more means cgroups' files leak.
    if max(server_cgroup_fds, default=0) > 32:
        fail(f"a fork server held {max(server_cgroup_fds)} cgroup control files open (bound 32)")


# --------------------------------------------------------------------------------------------
# Fork bombs, one at a time, with a fast sampler of the host's processes.

def cmd_bombs(sandbox, fixtures, runs, pids_limit, timeout_s):
    runs, limit, timeout_ms = int(runs), int(pids_limit), int(timeout_s) * 1000
    # The processes a run adds to the host: the launcher, its descendants (the init and, since
    # orphans are re-parented to the init, everything in the sandbox) and, to be sure, any new
    # process in the sandbox's PID namespace. pids.max counts the init (it is in the cgroup), so
    # the bound is the limit plus the launcher.
    bound = limit + 1
    host_ns = pid_ns(os.getpid())
    kinds = {
        "bash": ["bash", "-c", ":(){ :|:& };: 2>/dev/null; sleep 9"],
        "rust": [fixtures, "--fork-loop"],
    }
    results = {kind: [] for kind in kinds}
    for i in range(runs * len(kinds)):
        kind = list(kinds)[i % len(kinds)]
        json_path = f"{WORK}/bomb-{i}.json"
        before = set(pids())
        launcher = subprocess.Popen([sandbox, "run", "--pids", str(limit), "--timeout", f"{timeout_ms}ms", "--json", json_path, "--",
                                     *kinds[kind]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sandbox_ns, most, host_rise, samples, last = None, 0, 0, 0, time.monotonic()
        intervals = []
        while launcher.poll() is None:
            now = set(pids())
            parents = {}
            for pid in now:
                parent = ppid_of(pid)
                if parent is not None:
                    parents[pid] = parent
            children = {}
            for pid, parent in parents.items():
                children.setdefault(parent, []).append(pid)
            tree, todo = set(), [launcher.pid]
            while todo:
                pid = todo.pop()
                if pid in parents and pid not in tree:
                    tree.add(pid)
                    todo.extend(children.get(pid, []))
            if sandbox_ns is None:
                for pid in tree:
                    ns = pid_ns(pid)
                    if ns is not None and ns != host_ns:
                        sandbox_ns = ns
            if sandbox_ns is not None:
                tree |= {pid for pid in now - before - tree if pid_ns(pid) == sandbox_ns}
            most = max(most, len(tree))
            host_rise = max(host_rise, len(now) - len(before))
            samples += 1
            t = time.monotonic()
            intervals.append(t - last)
            last = t
        left = [pid for pid in set(pids()) - before if sandbox_ns is not None and pid_ns(pid) == sandbox_ns]
        try:
            with open(json_path) as f:
                o = json.load(f)
        except (OSError, ValueError) as err:
            o = None
            fail(f"{kind} bomb {i}: no outcome ({err})")
        contained = (o is not None and o["pids_limit_hits"] > 0 and o["timed_out"]
                     and (o["peak_pids"] is None or o["peak_pids"] <= limit) and most <= bound and not left)
        if o is not None and not contained:
            fail(f"{kind} bomb {i}: {most} processes (bound {bound}), {len(left)} left after the launcher, "
                 f"outcome {json.dumps(o)[:300]}")
        results[kind].append((contained, most, host_rise, samples, statistics.median(intervals[1:] or [0]),
                              o["pids_limit_hits"] if o else 0, (o["wall_ms"] - timeout_ms) if o else 0))
    for kind, rows in results.items():
        label = {"bash": "fork bomb, serial: bash :(){ :|:& };:", "rust": "fork bomb, serial: Rust fork() loop"}[kind]
        print(f"  {label:<34} {len(rows):>5} {sum(r[0] for r in rows):>6}   "
              f"max processes of the run {max(r[1] for r in rows)} (bound {bound} = pids {limit} + launcher) · "
              f"host-wide max rise {max(r[2] for r in rows)} · {min(r[3] for r in rows)}+ samples/run, "
              f"every {1000 * statistics.median(r[4] for r in rows):.1f} ms · pids-limit hits "
              f"{min(r[5] for r in rows)}-{max(r[5] for r in rows)} · teardown after timeout max {max(r[6] for r in rows)} ms")


# --------------------------------------------------------------------------------------------
# A group of allocators whose sum exceeds the memory limit.

def marked_processes(mark):
    """Processes with mark in their command line or environment."""
    found = []
    needle = mark.encode()
    me = os.getpid()
    for pid in pids():
        if pid == me:
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    if needle in f.read():
                        found.append(pid)
                        break
            except OSError:
                pass
    return found


def cmd_oomgroup(sandbox, fixtures, runs):
    runs = int(runs)
    rows = []
    for i in range(runs):
        mark = f"reloomgroup{os.getpid()}x{i}"
        json_path = f"{WORK}/oomgroup-{i}.json"
        script = f'for i in 1 2 3 4; do "$0" --hold-mb 40 2 & done; wait'
        env = dict(os.environ, RELIABILITY_MARK=mark)
        started = time.monotonic()
        rc = subprocess.call([sandbox, "run", "--pids", "20", "--mem", "100M", "--timeout", "60s", "--json", json_path,
                              "--", "sh", "-c", script, fixtures], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.monotonic() - started
        left = marked_processes(mark)
        try:
            with open(json_path) as f:
                o = json.load(f)
        except (OSError, ValueError) as err:
            fail(f"OOM group {i}: no outcome (exit {rc}, {err})")
            continue
        ok = (o["oom_kills"] >= 1 and o["peak_memory_bytes"] is not None and o["peak_memory_bytes"] <= 100 * MIB
              and not o["timed_out"] and not left)
        if not ok:
            fail(f"OOM group {i}: {len(left)} processes left, outcome {json.dumps(o)[:300]}")
        rows.append((ok, o["oom_kills"], o["peak_memory_bytes"] or 0, wall))
    if rows:
        print(f"  {'OOM group: 4 x 40 MiB under 100M':<34} {len(rows):>5} {sum(r[0] for r in rows):>6}   "
              f"oom kills {min(r[1] for r in rows)}-{max(r[1] for r in rows)} · peak mem max "
              f"{max(r[2] for r in rows) / MIB:.1f} MiB (bound 100.0) · every process ended, by itself, "
              f"wall max {max(r[3] for r in rows):.1f} s")


# --------------------------------------------------------------------------------------------
# The launcher SIGKILLed at random points.

def run_cgroup_dirs():
    """Run cgroups (<pidns>-<pid>-<start>-<seq>) below every cgroup mount."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            parts = d.split("-")
            if len(parts) == 4 and all(p.isdigit() for p in parts):
                found.append(os.path.join(root, d))
    return found


def owner_of(path):
    """(pid, start time) of the launcher named in a run cgroup's name."""
    parts = os.path.basename(path).split("-")
    return int(parts[1]), int(parts[2])


def wait_for(path, launcher, limit=20.0, spin=False):
    """Waits until path exists (spin: without sleeping, to act within microseconds of it)."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if launcher.poll() is not None or time.monotonic() > deadline:
            return os.path.exists(path)
        if not spin:
            time.sleep(0.0005)
    return True


def children_of(parent):
    """The children of parent (a new process: the ones after it in PID order are read first)."""
    found = [pid for pid in pids() if pid > parent and ppid_of(pid) == parent]
    return found or [pid for pid in pids() if pid < parent and ppid_of(pid) == parent]


def cmd_kills(sandbox, fixtures, runs, bound_ms):
    runs, bound_ms = int(runs), float(bound_ms)

    def start(mark, ends_soon):
        files, binary = shlex.quote(f"{WORK}/{mark}"), shlex.quote(fixtures)
        if ends_soon:
            # Leaves work for teardown: 10 sleeping processes and one holding 64 MiB (allocated
            # before the command ends), which the end of the PID namespace kills and frees.
            script = (f": {mark}; touch {files}.started; for i in 1 2 3 4 5 6 7 8 9 10; do "
                      f"(exec -a {mark} sleep 30) & done; (exec -a {mark} {binary} --hold-mb 64 30 {files}.ready) & "
                      f"while [ ! -e {files}.ready ]; do sleep 0.01; done; touch {files}.ended")
        else:
            script = f": {mark}; touch {files}.started; (exec -a {mark} sleep 30) & exec -a {mark} sleep 31"
        env = dict(os.environ, RELIABILITY_MARK=mark)
        return subprocess.Popen([sandbox, "run", "--pids", "20", "--mem", "100M", "--json", f"{WORK}/{mark}.json",
                                 "--", "bash", "-c", script], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # Calibration, without kills: how long set-up takes here (start to the command's first step)
    # and teardown (the command's last step to the launcher's exit), and the launcher's
    # descriptors and VmHWM at its end (the last sample before it exits).
    setup_s, teardown_s, end_fds, end_hwm = [], [], [], []
    for i in range(3):
        mark = f"relcal{os.getpid()}x{i}"
        t0 = time.monotonic()
        launcher = start(mark, True)
        if not wait_for(f"{WORK}/{mark}.started", launcher):
            fail("calibration: the command did not start")
            finish()
        setup_s.append(time.monotonic() - t0)
        wait_for(f"{WORK}/{mark}.ended", launcher, spin=True)
        t1 = time.monotonic()
        last = None
        while True:
            figures = status(launcher.pid)
            if figures is None or launcher.poll() is not None:
                break
            last = figures
        teardown_s.append(time.monotonic() - t1)
        launcher.wait()
        if last:
            end_fds.append(last["fds"])
            end_hwm.append(last["VmHWM"])
    # Kills aimed at set-up come after 0 .. 1.5 x its shortest duration here (some land while the
    # command already runs; the first comes at once, so that even a short run of this probe
    # has a kill before the cgroup exists: with the median, all three set-up kills of a
    # --runs 20 run in the VM once landed after the command had started); those aimed at
    # teardown 0 .. w after the command's last step, where w starts at teardown's duration and
    # is adjusted as it goes (some kills come too late: the launcher has exited); those aimed at
    # its last part when the init has been reaped.
    setup_window = 1.5 * min(setup_s)
    teardown_window = teardown_first = statistics.median(teardown_s)

    # Orphans (the sandbox's init, when its launcher is killed) come to this process.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        fail(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")
    init_endings, teardown_where = {}, {}
    phases = {"set-up, before its cgroup": 0, "set-up, cgroup made": 0, "command running": 0, "teardown": 0}
    late = 0
    gone_ms, running_fds, running_hwm = [], [], []
    killed = []  # (pid, start time) of every killed launcher
    stale_after_kill = bad_runs = stale_checks = 0
    for i in range(runs):
        aim = ("setup", "running", "teardown", "cleanup")[i % 4]
        failures_before = len(failures)
        mark = f"relkill{os.getpid()}x{i}"
        launcher = start(mark, aim in ("teardown", "cleanup"))
        with open(f"/proc/{launcher.pid}/stat") as f:
            stat = f.read()
        start_time = int(stat[stat.rfind(")") + 2:].split()[19])
        figures = None
        if aim == "setup":
            # Skewed towards the start, so that some kills come before the cgroup exists.
            time.sleep(0 if i == 0 else setup_window * random.random() ** 2)
        elif aim == "running":
            if wait_for(f"{WORK}/{mark}.started", launcher):
                time.sleep(random.uniform(0, 0.05))
                figures = status(launcher.pid)
        elif aim == "teardown":
            if wait_for(f"{WORK}/{mark}.ended", launcher, spin=True):
                until = time.monotonic() + random.uniform(0, teardown_window)
                while time.monotonic() < until:
                    pass
        elif wait_for(f"{WORK}/{mark}.started", launcher):
            # The last part of teardown: the launcher has reaped the init (which returns once
            # the whole PID namespace is gone) and reads the counters, removes the cgroup, writes
            # the JSON. Killed as soon as the init's /proc entry is gone.
            inits = children_of(launcher.pid)
            if inits and wait_for(f"{WORK}/{mark}.ended", launcher, spin=True):
                while os.path.exists(f"/proc/{inits[0]}"):
                    pass
        if launcher.poll() is None:
            os.kill(launcher.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        rc = launcher.wait()
        if aim == "teardown":
            # Aim again: a kill after the launcher's exit shortens the window, one that landed
            # widens it (the load on this machine changes how long teardown takes).
            teardown_window = max(teardown_window * (0.7 if rc != -signal.SIGKILL else 1.2), 20e-6)
        # Where the kill landed, from what the command and the launcher had done by then.
        done = lambda suffix: os.path.exists(f"{WORK}/{mark}.{suffix}")
        mine = [d for d in run_cgroup_dirs() if owner_of(d) == (launcher.pid, start_time)]
        phase = None
        if rc != -signal.SIGKILL:
            late += 1
            if rc != 0:
                fail(f"run {i} ({aim}): the launcher exited {rc} before the kill")
        else:
            killed.append((launcher.pid, start_time))
            stale_after_kill += bool(mine)
            if aim in ("teardown", "cleanup") and (done("ended") or done("json")):
                phase = "teardown"
            elif done("started"):
                phase = "command running"
            else:
                phase = "set-up, cgroup made" if mine else "set-up, before its cgroup"
            phases[phase] += 1
            if phase == "command running" and figures and aim == "running":
                running_fds.append(figures["fds"])
                running_hwm.append(figures["VmHWM"])
        init_fate = None
        # Nothing of the run may survive it, within the bound: no process with the mark (the
        # command's processes carry it in their command line, the sandbox's init and everything
        # else in the environment), and the sandbox's init, re-parented to this process (a
        # subreaper), must have ended: it is reaped here, and how it ended counted.
        while True:
            for orphan in children_of(os.getpid()):
                try:
                    reaped, wait_status = os.waitpid(orphan, os.WNOHANG)
                except ChildProcessError:
                    continue
                if reaped:
                    ending = (f"killed by signal {os.WTERMSIG(wait_status)}" if os.WIFSIGNALED(wait_status)
                              else f"exit {os.WEXITSTATUS(wait_status)}")
                    init_endings[ending] = init_endings.get(ending, 0) + 1
                    init_fate = ending
            left = marked_processes(mark)
            orphans = children_of(os.getpid())
            elapsed = (time.monotonic() - killed_at) * 1000
            if (not left and not orphans) or elapsed > bound_ms:
                break
            time.sleep(0.001)
        gone_ms.append(elapsed)
        if phase == "teardown":
            # Where in teardown, from how the init ended: killed (by PDEATHSIG: it had not yet
            # seen the command's end), exited but not reaped, or reaped by the launcher already
            # (the kill came while it read the counters, removed the cgroup or wrote the JSON).
            sub = {"killed by signal 9": "init running", "exit 0": "init ended"}.get(init_fate, "init reaped")
            if sub == "init reaped" and done("json"):
                sub = "JSON written"
            teardown_where[sub] = teardown_where.get(sub, 0) + 1
        if orphans:
            fail(f"run {i} ({aim}): the sandbox's init {orphans} has not ended {bound_ms:.0f} ms after the launcher's SIGKILL")
        if left:
            details = []
            for pid in left:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        text = f.read().replace(b"\0", b" ").decode(errors="replace")
                    details.append(f"{pid}: {text[:80]}")
                except OSError:
                    pass
            fail(f"run {i} ({aim}): {len(left)} processes survived the launcher's SIGKILL by "
                 f"{bound_ms:.0f} ms: {'; '.join(details)}")
            for pid in left + orphans:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # The launcher of this run got through its start (it ended by itself, or it had reaped
        # its init when killed), so it removed the stale cgroups of the launchers killed before
        # it (just after starting the command).
        if rc == 0 or (phase == "teardown" and init_fate is None):
            stale_checks += 1
            earlier = set(killed) - {(launcher.pid, start_time)}
            stale = [d for d in run_cgroup_dirs() if owner_of(d) in earlier]
            if stale:
                fail(f"run {i}: stale cgroups of earlier killed launchers still there after the next start: {stale[:3]}")
        if len(failures) > failures_before:
            bad_runs += 1
    # One more start removes the stale cgroups of the last ones.
    subprocess.call([sandbox, "run", "--", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stale = [d for d in run_cgroup_dirs() if owner_of(d) in killed]
    if stale:
        fail(f"stale cgroups of killed launchers left after a later start: {stale[:3]}")
    for phase, n in phases.items():
        if n == 0 and not phase.startswith("set-up"):
            fail(f"no kill landed in phase '{phase}' (calibration: set-up {max(setup_s) * 1000:.0f} ms, "
                 f"teardown {max(teardown_s) * 1000:.1f} ms)")
    if phases["set-up, before its cgroup"] + phases["set-up, cgroup made"] == 0:
        fail("no kill landed during set-up")
    if running_fds and max(running_fds) != min(running_fds):
        fail(f"the launcher's descriptors while its command runs differ between runs: {sorted(set(running_fds))}")
    print(f"  {'launcher SIGKILLed at random points':<34} {runs:>5} {runs - bad_runs:>6}   "
          + " · ".join(f"{phase} {n}" for phase, n in phases.items())
          + (" (" + ", ".join(f"{where} {n}" for where, n in sorted(teardown_where.items())) + ")" if teardown_where else "")
          + f" · exited before the kill {late}")
    print(f"    survivors gone after the kill: max {max(gone_ms):.0f} ms, mean {statistics.mean(gone_ms):.1f} ms "
          f"(bound {bound_ms:.0f}) · orphaned sandbox inits reaped: "
          + (", ".join(f"{n} {ending}" for ending, n in sorted(init_endings.items())) or "none")
          + f" · stale cgroups after {stale_after_kill} kills: none left after the next complete start "
          f"({stale_checks} checks) nor at the end")
    print(f"    CLI launcher: fds {fmt_range(running_fds)} while its command runs, {fmt_range(end_fds)} at its end · "
          f"VmHWM max {mib(max(running_hwm + end_hwm, default=0))} MiB · kills after 0-{1000 * setup_window:.0f} ms "
          f"(set-up) / 0-{1000 * teardown_first:.1f} ms after the command's end (teardown; {1000 * teardown_window:.2f} ms at the end)")


def cmd_pdeathsig(sandbox):
    """The launcher SIGKILLed between cloning the sandbox's init and the moment the init arms
    PR_SET_PDEATHSIG (the window the random kills above hit only now and then under load),
    made wide and certain: strace delays the init's first prctl() by 2 s. The launcher has
    written "go" by then; once killed, nothing of the run may go on. The control run kills the
    launcher after the (delayed) prctl, to show that the tracing does not change the outcome."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the orphaned init comes here
    if subprocess.call(["strace", "-V"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
        fail("strace is not installed: the PDEATHSIG check needs it (apt-get install strace; tests/run-all.sh does)")
        return
    rows = []
    for case, delay, kill_after in (("before", 2.0, 0.3), ("control", 0.2, 1.0)):
        mark = f"relpdeath{os.getpid()}{case}"
        tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=prctl",
             "-e", f"inject=prctl:delay_enter={int(delay * 1e6)}:when=1",
             sandbox, "run", "--pids", "20", "--", "bash", "-c", f"exec -a {mark} sleep 30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The launcher (strace's child), then its init (the launcher's child).
        deadline = time.monotonic() + 30
        launcher = init = None
        while time.monotonic() < deadline and init is None:
            launchers = children_of(tracer.pid)
            if launchers:
                launcher = launchers[0]
                inits = children_of(launcher)
                init = inits[0] if inits else None
            time.sleep(0.01)
        if init is None:
            fail(f"{case}: the sandbox's init did not appear")
            tracer.kill()
            tracer.wait()
            continue
        time.sleep(kill_after)
        os.kill(launcher, signal.SIGKILL)
        time.sleep(max(delay - kill_after, 0) + 1.0)
        left = marked_processes(mark)
        survived = [pid for pid in left if pid != tracer.pid]
        rows.append((case, survived))
        for pid in survived:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        tracer.wait()
        # Reap the orphaned init (re-parented to this process).
        time.sleep(0.1)
        for orphan in children_of(os.getpid()):
            try:
                os.waitpid(orphan, os.WNOHANG)
            except ChildProcessError:
                pass
        if survived:
            fail(f"launcher SIGKILLed {kill_after:.1f} s after the clone, its init's PR_SET_PDEATHSIG delayed "
                 f"{delay:.1f} s: {len(survived)} processes of the run still ran 1 s later (the init and the "
                 f"command: {survived}) - the init got 'go' and ran the command without a parent")
    # A later start removes the killed launchers' cgroups.
    subprocess.call([sandbox, "run", "--", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = sum(1 for _, survived in rows if not survived)
    print(f"  {'launcher SIGKILLed before PDEATHSIG':<34} {len(rows):>5} {ok:>6}   init's prctl delayed 2 s by strace, "
          f"launcher killed meanwhile: " + ", ".join(f"{case}: {len(survived)} processes survived" for case, survived in rows))


def fmt_range(values):
    if not values:
        return "n/a"
    return str(min(values)) if min(values) == max(values) else f"{min(values)}-{max(values)}"


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"cli": cmd_cli, "isolated": cmd_isolated, "bombs": cmd_bombs, "oomgroup": cmd_oomgroup, "kills": cmd_kills,
     "pdeathsig": cmd_pdeathsig}[command](*args)
    finish()
