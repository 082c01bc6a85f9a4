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
# cargo test (both runners) and cargo nextest run in the current directory, with their verdicts.
run_suite() {
  cargo test 2>&1 | tee test.log
  grep -q "test fork_bomb_is_contained ... ok (pids-limit hits " test.log
  grep -q "test leak_is_oom_killed ... ok" test.log
  grep -q "test should_panic_composes - should panic ... ok" test.log
  cargo nextest run 2>&1 | tee nextest.log
  grep -Eq "Summary .* [0-9]+ tests? run: [0-9]+ passed" nextest.log
}
run_suite
# The runner's JUnit report, as a CI job asks for it, is valid against the project's schema.
cargo test -q --test contained -- --junit junit.xml >/dev/null
xmllint --noout --schema "$repo/tests/junit.xsd" junit.xml
# The README's resource regression commands: a baseline saved and held, then the regression it
# shows (48 MiB instead of 16) caught; and a memory budget.
cargo test -q --test contained -- --save-baseline tests/contained.baseline >/dev/null
cargo test -q --test contained -- --baseline tests/contained.baseline > baseline.log
grep -q "test small_allocation_fits ... ok (.* % of its baseline)" baseline.log
cp tests/contained.rs contained.rs.orig
sed -i 's/16 << 20/48 << 20/g' tests/contained.rs
if cargo test -q --test contained -- --baseline tests/contained.baseline > regression.log 2>&1; then
  cat regression.log >&2
  echo "outside-crate: a 48 MiB allocation against a 16 MiB baseline passed" >&2
  exit 1
fi
grep -Eq "used more than its baseline allows: peak mem [0-9.]+ MiB, baseline [0-9.]+ MiB \(\+[0-9]+ %\), allowed " regression.log
# Copied back, not moved: a moved file keeps its old mtime, and cargo would keep the 48 MiB build.
cp contained.rs.orig tests/contained.rs
rm contained.rs.orig
rm tests/contained.baseline
cargo test -q --test contained -- --test-threads 8 --mem-budget 2G > budget.log
grep -q "test result: ok. 2 passed" budget.log
grep -Eq "test small_allocation_fits ... ok \(peak pids [0-9]+, peak mem 1[0-9.]+ MiB" budget.log
if { true >&3; } 2>/dev/null; then
  cargo test --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' >&3
fi

# The same crate as a crates.io user gets it: against the packaged crates (cargo package's
# tarballs, unpacked, patched in for crates.io), with the library renamed in Cargo.toml
# (`sbx = { package = "test-sandbox", .. }`): #[isolated] and main!() find it under its new name.
(cd "$repo" && cargo package --workspace --no-verify --allow-dirty -q)
packages=$dir/packages
mkdir -p "$packages"
for crate in test-sandbox test-sandbox-macros test-sandbox-units; do
  tar xzf "$(ls "$CARGO_TARGET_DIR"/package/"$crate"-[0-9]*.crate | tail -n1)" -C "$packages"
done
renamed=$dir/renamed
mkdir -p "$renamed"
cp -r src tests "$renamed/"
cd "$renamed"
python3 - "$dir/Cargo.toml" "$packages" <<'PY'
import glob, os, re, sys
manifest, packages = sys.argv[1:]
text = open(manifest).read()
text = re.sub(r'^test-sandbox = \{[^}]*\}$', 'sbx = { package = "test-sandbox", version = "0.1" }', text, flags=re.M)
text += "\n[patch.crates-io]\n"
for crate in ["test-sandbox", "test-sandbox-macros", "test-sandbox-units"]:
    path = sorted(glob.glob(os.path.join(packages, crate + "-[0-9]*")))[-1]
    text += f'{crate} = {{ path = "{path}" }}\n'
open("Cargo.toml", "w").write(text)
for path in glob.glob("tests/*.rs"):
    code = open(path).read()
    open(path, "w").write(re.sub(r"\bsandbox::", "sbx::", code))
PY
grep -q '^sbx = { package = "test-sandbox"' Cargo.toml
if grep -rq '\bsandbox::' tests; then echo "outside-crate: the renamed copy still names sandbox::" >&2; exit 1; fi
run_suite
# Off Linux the same crate still builds: its isolated tests are reported ignored there.
for target in x86_64-apple-darwin x86_64-pc-windows-msvc; do
  echo "outside-crate: cargo check --tests --target $target"
  cargo check --tests --target "$target" -q
done
echo "outside-crate: README crate passes under cargo test and cargo nextest run, also against the packaged crates with the library renamed, and builds for macOS and Windows"
