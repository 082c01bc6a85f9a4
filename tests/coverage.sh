#!/usr/bin/env bash
# cargo llvm-cov counts the code that #[isolated] bodies run: tests/coverage-crate has a function
# that only its stock-harness test's body calls and one that only its runner test's body calls;
# both must be counted under `cargo llvm-cov` (cargo test: both runners) and under
# `cargo llvm-cov nextest`, and a function no test calls must stay at 0.
set -euo pipefail
. "$(dirname "$0")/crate-copy.sh"
if ! cargo llvm-cov --version >/dev/null 2>&1; then
  echo "coverage.sh: needs cargo-llvm-cov (cargo install cargo-llvm-cov --locked; rustup component add llvm-tools; tests/install-deps.sh does both)" >&2
  exit 1
fi
copy_crate coverage-crate
check() {  # LCOV WHAT: the two body-only functions counted, the uncalled one not
  python3 - "$@" <<'PY'
import sys
lcov, what = sys.argv[1:]
counts = {}
for line in open(lcov):
    if line.startswith("FNDA:"):
        count, name = line[len("FNDA:"):].strip().split(",", 1)
        counts[name] = counts.get(name, 0) + int(count)
def count(function):
    # Symbol names (mangled or not) contain the function's name.
    hits = [c for name, c in counts.items() if function in name]
    assert hits, f"{what}: {function} is not in the report"
    return sum(hits)
for function in ["called_by_the_stock_harness_body", "called_by_the_runner_body"]:
    assert count(function) > 0, f"{what}: {function} ran in an isolated body but was not counted"
assert count("called_by_no_test") == 0, f"{what}: called_by_no_test was counted, though no test calls it"
print(f"coverage.sh: {what}: both isolated bodies' code counted, the uncalled function not")
PY
}
cargo llvm-cov --lcov --output-path test.lcov
check test.lcov "cargo llvm-cov (stock harness and sandbox's runner)"
cargo llvm-cov nextest --lcov --output-path nextest.lcov
check nextest.lcov "cargo llvm-cov nextest"
