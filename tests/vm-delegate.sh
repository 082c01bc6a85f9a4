#!/usr/bin/env bash
# Runs inside the cgroup-v2 VM, around a command that starts many launchers from one process
# tree (a test suite, the reliability suite). A launcher moves into a child cgroup only the
# processes it started; in the leaf and ns modes the suite's own processes share its cgroup, so
# the suite is given what a CI job without systemd sets up: a delegated cgroup that holds no
# processes, in SANDBOX_CGROUP_PARENT.
#   leaf: a new cgroup beside the command's, in the delegated subtree (controllers enabled there);
#   ns:   like a container's entrypoint, this script first moves the namespace root's processes
#         (the VM's own) into a child, then enables the controllers in the root;
#   root: nothing (the root cgroup may hold processes and have children).
#   tests/vm-delegate.sh CMD ARGS...
set -eu
mode=${SANDBOX_VM_MODE:-${CGV2_CGROUP_MODE:-leaf}}
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
case $mode in
  leaf)
    export SANDBOX_CGROUP_PARENT=${own%/*}/suite-runs
    ;;
  ns)
    mkdir -p /sys/fs/cgroup/vm
    for pid in $(cat /sys/fs/cgroup/cgroup.procs); do echo "$pid" > /sys/fs/cgroup/vm/cgroup.procs 2>/dev/null || true; done
    echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
    export SANDBOX_CGROUP_PARENT=/suite-runs
    ;;
  root) ;;
  *) echo "vm-delegate.sh: unknown mode $mode" >&2; exit 2 ;;
esac
echo "vm-delegate.sh: mode $mode, runs of the suite in ${SANDBOX_CGROUP_PARENT:-<own cgroup>/sandbox}"
exec "$@"
