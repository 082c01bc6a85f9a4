#!/usr/bin/env bash
# Runs inside the cgroup-v2 VM (see tests/run-all.sh): every test binary given, then the
# leftover check. Prints where this mode put the process, so logs show which mode ran.
set -u
here=$(cd "$(dirname "$0")" && pwd)
echo "== cgroup v2 VM, mode ${SANDBOX_VM_MODE:-?}: kernel $(uname -r), my cgroup $(cat /proc/self/cgroup)"
cat /proc/self/mountinfo > /tmp/mountinfo.before
status=0
for bin in "$@"; do
  echo "== $(basename "$bin")"
  "$bin" --test-threads=2 || status=1
done
# Forbidden user namespaces are named (this changes a global sysctl: only in the throw-away VM).
sandbox=${SANDBOX_BIN:?run-all.sh sets SANDBOX_BIN}
if [[ -x $sandbox ]]; then
  # Each setting that forbids them, where this kernel has it (Debian's kernels have both).
  for setting in user.max_user_namespaces=0 kernel.unprivileged_userns_clone=0; do
    name=${setting%=*}
    [[ -e /proc/sys/${name//.//} ]] || { echo "no sysctl $name on this kernel"; continue; }
    before=$(sysctl -n "$name")
    sysctl -qw "$setting"
    out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$sandbox" run -- true 2>&1); rc=$?
    sysctl -qw "$name=$before"
    if [[ $rc == 125 && $out == *"forbidden by sysctl $setting"* ]]; then
      echo "forbidden user namespaces ($setting): named ($out)"
    else
      echo "FAIL: $setting not named: rc=$rc $out"; status=1
    fi
  done
else
  echo "FAIL: no sandbox binary at $sandbox"; status=1
fi
# A launcher alone in its cgroup makes its runs there (it moves itself into a leaf); one that
# shares its cgroup with a process it did not start moves nothing and says why.
if [[ -n ${SANDBOX_CGROUP_PARENT:-} && -x $sandbox ]]; then
  delegated=/sys/fs/cgroup$(dirname "$SANDBOX_CGROUP_PARENT")
  delegated=${delegated%/}
  alone=$delegated/alone-$$ shared=$delegated/shared-$$
  mkdir "$alone" "$shared"
  out=$(env -u SANDBOX_CGROUP_PARENT sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" run --pids 20 --json - -- true' \
    - "$alone" "$sandbox" 2>&1)
  if [[ $out == *"\"cgroup_dirs\":[\"$alone/sandbox/"* && $out == *'"pids":"cgroup"'* ]]; then
    echo "alone in its cgroup: runs below it (${alone#/sys/fs/cgroup}/sandbox), pids enforced by the cgroup"
  else
    echo "FAIL: a launcher alone in $alone did not run there: $out"; status=1
  fi
  sleep 60 &
  sibling=$!
  echo $sibling > "$shared/cgroup.procs"
  out=$(env -u SANDBOX_CGROUP_PARENT sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" run --pids 20 -- true' - "$shared" "$sandbox" 2>&1)
  rc=$?
  where=$(sed -n 's/^0:://p' /proc/$sibling/cgroup)
  if [[ $rc == 125 && $out == *"holds processes the sandbox did not start ($sibling (sleep))"* && $where == "${shared#/sys/fs/cgroup}" ]]; then
    echo "a process beside the launcher stayed in $where; the run said why: ${out:0:160}..."
  else
    echo "FAIL: sibling in ${where:-?} (expected ${shared#/sys/fs/cgroup}), rc=$rc: $out"; status=1
  fi
  kill $sibling; wait $sibling 2>/dev/null
  for dir in "$alone"/sandbox "$alone"/leaf "$alone" "$shared"/leaf "$shared"; do [[ -d $dir ]] && rmdir "$dir"; done
fi
"$here/leftovers.sh" /tmp/mountinfo.before || status=1
exit $status
