#!/usr/bin/env bash
# Builds the crate of the README's "Writing isolated tests" section exactly as written there (files
# marked <!-- file: PATH -->), pointed at this checkout, and runs it as a user would: cargo test
# (stock harness and sandbox's runner) and cargo nextest run. Prints the test executables' paths
# on fd 3 when asked (for the cgroup-v2 VM run; then OUTSIDE_CRATE_DIR names a directory the
# caller keeps until those have run and then removes).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -n ${OUTSIDE_CRATE_DIR:-} ]]; then
  dir=$OUTSIDE_CRATE_DIR  # the caller removes it
else
  dir=$(mktemp -d /var/tmp/sandbox-outside-crate.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
fi
python3 - "$repo/README.md" "$dir" "$repo/sandbox" <<'PY'
import os, re, sys
readme, out, sandbox = sys.argv[1:]
text = open(readme).read()
blocks = re.findall(r'<!-- file: (\S+) -->\n```\w*\n(.*?)```', text, re.S)
assert blocks, "no <!-- file: --> blocks in the README"
for path, body in blocks:
    body = body.replace("/path/to/this/repo/sandbox", sandbox)
    os.makedirs(os.path.join(out, os.path.dirname(path)), exist_ok=True)
    open(os.path.join(out, path), "w").write(body)
print("outside-crate: wrote", ", ".join(p for p, _ in blocks), "to", out)
PY
cd "$dir"
export CARGO_TARGET_DIR=$dir/target
cargo test 2>&1 | tee test.log
grep -q "test fork_bomb_is_contained ... ok (pids-limit hits " test.log
grep -q "test leak_is_oom_killed ... ok" test.log
grep -q "test should_panic_composes - should panic ... ok" test.log
cargo nextest run 2>&1 | tee nextest.log
grep -Eq "Summary .* [0-9]+ tests? run: [0-9]+ passed" nextest.log
if { true >&3; } 2>/dev/null; then
  cargo test --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' >&3
fi
echo "outside-crate: README crate passes under cargo test and cargo nextest run"
