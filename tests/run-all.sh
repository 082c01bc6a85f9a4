#!/usr/bin/env bash
# The test command of the README: installs what the tests need, runs the whole suite on this
# host (cgroup v1 here), then again in the cgroup-v2 VM in its leaf, root and ns modes, and
# checks after each that no cgroup, mount or process of the sandbox is left; last, the VM under
# systemd in three placements (tests/systemd-placement.sh), which also checks that no unit is left.
#
#   tests/run-all.sh             everything (as root)
#   tests/run-all.sh --host-only skip the VM (says so loudly; CI never does this)
set -euo pipefail
cd "$(dirname "$0")/.."
host_only=0
[[ ${1:-} == --host-only ]] && host_only=1

if [[ $(id -u) != 0 ]]; then
  echo "run-all.sh: the suite creates namespaces and cgroups: run it as root (sudo tests/run-all.sh)" >&2
  exit 1
fi
# Everything the suite, the benchmark and the VM runner need (quiet when all is there).
if [[ $host_only == 1 ]]; then tests/install-deps.sh --no-vm; else tests/install-deps.sh; fi

# Scratch of this run, removed however it ends (the outside and attribute crates' binaries are
# needed until the VM runs are over).
outside=$(mktemp -d /var/tmp/sandbox-outside-crate.XXXXXX)
attributes=$(mktemp -d /var/tmp/sandbox-attributes.XXXXXX)
trap 'rm -rf "$outside" "$attributes" /tmp/sandbox-outside-bins.$$ /tmp/sandbox-attribute-bins.$$ /tmp/sandbox-mountinfo.before.$$' EXIT
cat /proc/self/mountinfo > /tmp/sandbox-mountinfo.before.$$
echo "== host: cgroup layout $(stat -fc %T /sys/fs/cgroup), kernel $(uname -r)"
cargo test --workspace
# A crate outside this workspace, written from the README alone: cargo test and cargo nextest run.
OUTSIDE_CRATE_DIR=$outside tests/outside-crate.sh 3>/tmp/sandbox-outside-bins.$$
# The attributes suites already use (tokio, rstest, test-case, test-log, tracing-test, serial_test)
# with #[isolated], under cargo test, sandbox's runner and nextest; the same three in the VM's leaf mode.
ATTRIBUTES_CRATE_DIR=$attributes tests/attributes.sh 3>/tmp/sandbox-attribute-bins.$$
# A suite written without sandbox in mind, under plain nextest and the README's nextest recipe.
tests/nextest-wrapper.sh
# cargo llvm-cov counts what isolated bodies run, under both runners and nextest.
tests/coverage.sh
tests/leftovers.sh /tmp/sandbox-mountinfo.before.$$

if [[ $host_only == 1 ]]; then
  echo "run-all.sh: cgroup v2 VM suite NOT run (--host-only)"
  exit 0
fi

vm=${SANDBOX_CGV2_VM:-../shared/cgroup2-vm/run-in-cgroup2-vm.sh}
if [[ ! -x $vm ]]; then
  echo "run-all.sh: the cgroup-v2 VM runner is not at $vm: set SANDBOX_CGV2_VM to its path" >&2
  exit 1
fi
# The test binaries, built here; the VM sees the host's file system at the same paths. The
# fixtures that tests/isolated.rs runs are built too and named to it in SANDBOX_TEST_BIN_<TARGET>
# (inside the VM it cannot build them itself).
test_bins() {  # cargo test ARGS... --no-run: prints "<target name> <executable>" per test binary
  cargo test "$@" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    # The macro crate'"'"'s tests check compile errors (they run cargo), nothing of the kernel:
    # not run in the VM.
    if (m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]
            and "sandbox-macros" not in m["package_id"]):
        print(m["target"]["name"], m["executable"])'
}
mapfile -t bins < <(test_bins --workspace | cut -d' ' -f2-)
while read -r name exe; do
  export "SANDBOX_TEST_BIN_${name^^}=$exe"
done < <(test_bins -p test-sandbox --test isolated_fixtures --test isolated_runner_fixtures --test isolated_runner --test isolated)
mapfile -t -O "${#bins[@]}" bins < /tmp/sandbox-outside-bins.$$
echo "== cgroup v2 VM: ${#bins[@]} test binaries, modes leaf root ns"
export SANDBOX_BIN=$PWD/target/debug/sandbox
mapfile -t attribute_bins < /tmp/sandbox-attribute-bins.$$
for mode in leaf root ns; do
  # The attributes crate (both runners and nextest) in one mode: it tests the macro, not the mode.
  extra=()
  [[ $mode == leaf ]] && extra=("${attribute_bins[@]}")
  SANDBOX_VM_MODE=$mode "$vm" -t 900 -m 2G --cgroup-mode "$mode" -- tests/vm-delegate.sh tests/vm-suite.sh "${bins[@]}" "${extra[@]}"
done
# Under a real systemd, where systemd hosts put a CI step (root in a plain service) or a user
# (a service of their user manager, a login session): tests/systemd-placement.sh. The user
# placements run as uid 1000, which must read what they run: the binaries and the script go to a
# world-readable directory, which is also the VM's working directory.
systemd_dir=$(mktemp -d /tmp/sandbox-systemd.XXXXXX)
chmod 755 "$systemd_dir"
cp "$SANDBOX_BIN" "$SANDBOX_TEST_BIN_ISOLATED" "$SANDBOX_TEST_BIN_ISOLATED_RUNNER" tests/systemd-placement.sh "$systemd_dir/"
vm_abs=$(realpath "$vm")
for placement in system-service user-service user-session; do
  (cd "$systemd_dir" && "$vm_abs" -t 900 -m 2G --systemd "$placement" -- ./systemd-placement.sh \
    "$systemd_dir/sandbox" "$systemd_dir/$(basename "$SANDBOX_TEST_BIN_ISOLATED")" \
    "$systemd_dir/$(basename "$SANDBOX_TEST_BIN_ISOLATED_RUNNER")") \
    || { rm -rf "$systemd_dir"; echo "run-all.sh: systemd placement $placement failed"; exit 1; }
done
rm -rf "$systemd_dir"
echo "run-all.sh: host, cgroup v2 (leaf, root, ns) and systemd (system-service, user-service, user-session) suites passed"
