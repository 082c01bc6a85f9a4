#!/usr/bin/env bash
# #[isolated] with the test attributes suites already use: tests/attributes-crate (tokio, rstest,
# test-case, test-log, tracing-test and serial_test from crates.io), pointed at this checkout,
# under cargo test (the stock harness and sandbox's runner) and cargo nextest run. Every body
# checks that it is PID 2 of a sandbox in a run's own cgroup; this script checks that every test
# is listed once and passes once under each runner, that the order test-case cannot take fails
# naming the one it can, that an async test's timeout lists what still ran, and that a logged
# test's output appears with the test's. Prints on fd 3, when asked, the two test executables'
# paths and a script that runs both under nextest from an archive (for the cgroup-v2 VM run; then
# ATTRIBUTES_CRATE_DIR names a directory the caller keeps until those have run and removes it).
set -euo pipefail
. "$(dirname "$0")/crate-copy.sh"
copy_crate attributes-crate "${ATTRIBUTES_CRATE_DIR:-}"
fail() { echo "attributes.sh: $*" >&2; exit 1; }

# Each target lists every test once: 35 tests, the cases named as rstest and test-case name them.
expected=35
for target in stock runner; do
  cargo test -q --test "$target" -- --list 2>/dev/null | sed -n 's/: test$//p' | sort > "$target.list"
  [[ $(wc -l < "$target.list") == "$expected" ]] || fail "$target lists $(wc -l < "$target.list") tests, expected $expected: $(cat "$target.list")"
  [[ -z $(uniq -d "$target.list") ]] || fail "$target lists a test twice: $(uniq -d "$target.list")"
done
cmp -s stock.list runner.list || fail "the two runners list different tests: $(diff stock.list runner.list)"
for name in rstest_cases::case_3 rstest_values::a_2_2::b_1_3 test_cases::test_case_2_doubled \
  test_cases_async_isolated_below::test_case_2_2_expects tokio_above_multi_thread serial_above_b; do
  grep -qx "$name" stock.list || fail "no test $name in the list"
done
echo "attributes.sh: both targets list the same $expected tests, each once"

# cargo test runs both targets: each test once, all passing.
cargo test 2>&1 | tee test.log
[[ $(grep -c "^test result: ok. $expected passed; 0 failed" test.log) == 2 ]] \
  || fail "cargo test did not pass $expected tests in each target"
grep -q "^test tokio_leak_is_oom_killed ... ok (oom kills 1, " test.log || fail "the async OOM kill was not counted by the runner"
grep -Eq "^test tokio_fork_bomb_is_contained ... ok \(pids-limit hits [1-9]" test.log || fail "the async fork bomb hit no pids limit"
# The runner's filters and --exact select a case.
cargo test -q --test runner -- --exact rstest_cases::case_2 > exact.log
grep -q "^test rstest_cases::case_2 ... ok" exact.log && grep -q "1 passed; 0 failed; .* 34 filtered out" exact.log \
  || fail "--exact rstest_cases::case_2 did not run that case alone: $(cat exact.log)"
# A logger set up by test-log inside the sandbox writes where the test's output goes.
cargo test -q --test stock -- --exact test_log_above --nocapture > logged.log 2>&1
grep -q "test_log_above logs through log" logged.log || fail "test-log's output is missing: $(cat logged.log)"

# nextest: both targets, a process per test; serial tests in a test group (.config/nextest.toml).
cargo nextest run 2>&1 | tee nextest.log
grep -Eq "Summary .* $((2 * expected)) tests run: $((2 * expected)) passed" nextest.log \
  || fail "nextest did not run and pass $((2 * expected)) tests"

# test-case above #[isolated] registers each case twice: the second run fails, naming the fix.
if cargo test -q --test must_fail -- wrong_order > wrong_order.log 2>&1; then fail "the double registration passed"; fi
grep -q "2 passed; 2 failed" wrong_order.log || fail "expected each case once passed, once failed: $(cat wrong_order.log)"
grep -q "runs a second time in this test binary: a #\[test\] above #\[isolated\] registers it again" wrong_order.log \
  || fail "the second run did not name the cause: $(cat wrong_order.log)"
# Under nextest (a process per test, where both registrations run): each case fails.
if cargo nextest run --test must_fail -E 'test(wrong_order)' > wrong_order_nextest.log 2>&1; then
  fail "the double registration passed under nextest"
fi
grep -Eq "Summary .* 2 tests run: 0 passed, 2 failed" wrong_order_nextest.log && grep -q "runs a second time in this test binary" wrong_order_nextest.log \
  || fail "nextest did not fail each doubly registered case naming the cause: $(cat wrong_order_nextest.log)"
# An async test that hangs: its timeout ends it and lists what still ran.
if cargo test -q --test must_fail -- --exact async_hang > hang.log 2>&1; then fail "the hanging async test passed"; fi
grep -q "isolated test failed: timed out after 2.0 s (killed)" hang.log && grep -Eq "^  pid 3 S .*: sleep 30$" hang.log \
  || fail "the async timeout did not list the sleep still running: $(cat hang.log)"
echo "attributes.sh: every test once under cargo test, sandbox's runner and nextest; the refused order names the fix"

if { true >&3; } 2>/dev/null; then
  cargo test --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("stock", "runner"):
        print(m["executable"])' >&3
  # nextest where cargo cannot build: the tests archived here, run from the archive by a script
  # that takes the test binaries' arguments (--test-threads=N).
  cargo nextest archive --archive-file "$dir/nextest.tar.zst" 2>/dev/null
  cat > "$dir/nextest-from-archive.sh" <<SCRIPT
#!/usr/bin/env bash
exec $(command -v cargo-nextest) nextest run --archive-file $dir/nextest.tar.zst --workspace-remap $dir "\$@"
SCRIPT
  chmod +x "$dir/nextest-from-archive.sh"
  echo "$dir/nextest-from-archive.sh" >&3
fi
