#!/usr/bin/env bash
# Runs tests/third-party-suite (plain #[test]s that fork, signal, open a pseudo-terminal and look
# at their session) under plain `cargo nextest run` and under the README's nextest recipe (its
# .config/nextest.toml block, as written, with the `sandbox` CLI under test first on PATH), and
# compares the per-test results of both runs' JUnit reports: they must be the same, every test
# but the two that fail on purpose must pass, and under the recipe each failure's output must
# hold the sandbox's summary line, under the limits of the rule that matched it.
#
#   tests/nextest-wrapper.sh            with target/debug/sandbox (cargo build first)
#   SANDBOX_CLI=PATH tests/nextest-wrapper.sh    with an installed CLI
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cli=${SANDBOX_CLI:-$repo/target/debug/sandbox}
if [[ ! -x $cli || $(basename "$cli") != sandbox ]]; then
  echo "nextest-wrapper.sh: no sandbox CLI at $cli (cargo build, or set SANDBOX_CLI to a program named sandbox)" >&2
  exit 1
fi
dir=$(mktemp -d /var/tmp/sandbox-nextest-suite.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp -r "$repo/tests/third-party-suite/." "$dir/"
cd "$dir"
export CARGO_TARGET_DIR=$dir/target
mkdir -p .config
junit='
[profile.default.junit]
path = "junit.xml"'
# Two tests fail on purpose: nextest's exit status says nothing here, the reports do.
run_suite() {  # NAME [LAUNCHER...]: runs the suite, keeps its JUnit report as NAME.xml
  local name=$1; shift
  "$@" cargo nextest run --no-fail-fast >"$name.log" 2>&1 || true
  set -- "$name"
  if [[ ! -s target/nextest/default/junit.xml ]]; then
    cat "$1.log" >&2
    echo "nextest-wrapper.sh: the $1 run wrote no JUnit report (its log is above)" >&2
    exit 1
  fi
  mv target/nextest/default/junit.xml "$1.xml"
}
echo "$junit" > .config/nextest.toml
# The reference run gets a session of its own, as under a login shell or a CI runner on a host.
# A job started in a container can have its session leader outside its PID namespace, where
# getsid() returns 0: the very difference the sandbox removes, so it must not be the reference.
run_suite plain setsid -w
python3 - "$repo/README.md" > .config/nextest.toml <<'PY'
import re, sys
blocks = re.findall(r'<!-- nextest recipe: \.config/nextest\.toml -->\n```toml\n(.*?)```', open(sys.argv[1]).read(), re.S)
assert len(blocks) == 1, "the README has no (or more than one) nextest recipe block"
print(blocks[0], end="")
PY
echo "$junit" >> .config/nextest.toml
PATH=$(dirname "$cli"):$PATH run_suite sandboxed
python3 - plain.xml sandboxed.xml <<'PY'
import sys
import xml.etree.ElementTree as ET

def results(path):
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        status = "passed" if failure is None else "failed"
        err = "".join((case.findtext(tag) or "") for tag in ("system-err", "system-out"))
        err += (failure.text or "") if failure is not None else ""
        cases[case.get("name")] = (status, err)
    return cases

plain, sandboxed = results(sys.argv[1]), results(sys.argv[2])
assert len(plain) >= 15, f"only {len(plain)} tests in the plain run"
assert plain.keys() == sandboxed.keys(), f"different tests: {sorted(plain.keys() ^ sandboxed.keys())}"
differ = {name: (plain[name][0], sandboxed[name][0]) for name in plain if plain[name][0] != sandboxed[name][0]}
assert not differ, f"per-test results differ (plain, sandboxed): {differ}\n" + "\n".join(
    f"--- {name}, plain:\n{plain[name][1]}\n--- {name}, sandboxed:\n{sandboxed[name][1]}" for name in differ)
failed = sorted(name for name, (status, _) in plain.items() if status == "failed")
assert all("fails_on_purpose" in name for name in failed) and len(failed) == 2, f"unexpected failures: {failed}"
# Under the recipe each failure ends with the sandbox's summary, under the rule that matched.
for name in failed:
    assert any(line.startswith("sandbox: ") for line in sandboxed[name][1].splitlines()), \
        f"{name}: no sandbox summary line in\n{sandboxed[name][1]}"
memory = next(name for name in failed if "memory" in name)
assert "killed by the OOM killer" in sandboxed[memory][1] and "of 64.0 MiB" in sandboxed[memory][1], sandboxed[memory][1]
print(f"nextest-wrapper.sh: {len(plain)} tests, the same result for each under plain nextest and under the "
      f"README's recipe ({len(failed)} failing on purpose, with the sandbox's summary line)")
PY
