#!/usr/bin/env bash
# Fails when anything a sandbox run creates is still on this machine: a run cgroup
# (<pid-namespace>-<pid>-<start>-<seq> below any cgroup mount) or a test's (sandbox-test-*), a mount that was not in the
# mount table saved in $1, or a process named sandbox (the launcher, or a sandbox's init).
set -u
mountinfo_before=$1
fails=0
runs=$(find /sys/fs/cgroup -mindepth 1 -type d -regextype egrep -regex '.*/[0-9]+-[0-9]+-[0-9]+-[0-9]+' 2>/dev/null)
if [[ -n $runs ]]; then echo "leftover run cgroups:"; echo "$runs" | sed 's/^/  /'; fails=1; fi
# The cgroups the tests name themselves (--cgroup-parent sandbox-test-...), made by a run in a
# hierarchy the test does not clean.
parents=$(find /sys/fs/cgroup -mindepth 1 -type d -name 'sandbox-test-*' 2>/dev/null)
if [[ -n $parents ]]; then echo "leftover test cgroups:"; echo "$parents" | sed 's/^/  /'; fails=1; fi
if ! diff <(cut -d' ' -f5,9 "$mountinfo_before" | sort) <(cut -d' ' -f5,9 /proc/self/mountinfo | sort) >/tmp/leftover-mounts.$$; then
  echo "the mount table changed:"; sed 's/^/  /' /tmp/leftover-mounts.$$; fails=1
fi
rm -f /tmp/leftover-mounts.$$
procs=$(pgrep -ax sandbox)
if [[ -n $procs ]]; then echo "leftover sandbox processes:"; echo "$procs" | sed 's/^/  /'; fails=1; fi
if [[ $fails = 0 ]]; then echo "leftovers: none (no run cgroup, mount or sandbox process remains)"; fi
exit $fails
