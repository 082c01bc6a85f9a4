#!/usr/bin/env bash
# Installs everything the tests, the benchmark and the cgroup-v2 VM runner need on a Debian
# machine that has only Rust (rustup, cargo) and Debian's base image. Idempotent: with all of it
# present it installs nothing and prints one line. Run as root (apt-get); tests/run-all.sh and
# .ci/run call it first.
#
#   busybox-static     the --rootfs tests build a root file system from it
#   gcc, libc6-dev     the chroot-escape test compiles a static C program (libc.a)
#   strace             the reliability suite widens a race window with it
#   iproute2           ip: a contained run's root configures a network namespace of its own
#   bubblewrap         the benchmark compares against bwrap
#   util-linux         setpriv (tests as uid 65534), unshare (benchmark baseline)
#   bsdutils           script(1): a test runs the CLI on a pseudo-terminal
#   libxml2-utils      xmllint: the runner's JUnit XML is validated against tests/junit.xsd
#   python3            the reliability probes and the scripts that read cargo's JSON
#   <arch>-unknown-linux-musl (rustup)   the README's static CLI build, which CI installs
#   x86_64-apple-darwin, x86_64-pc-windows-msvc (rustup)   outside-crate.sh's off-Linux checks
#   cargo-nextest      tests/outside-crate.sh runs the README crate under nextest too
#   cargo-llvm-cov, llvm-tools (rustup)   tests/coverage.sh measures isolated bodies' coverage
#   the VM runner's --prepare (QEMU, a cached kernel; systemd for its --systemd placements)
#
#   tests/install-deps.sh [--no-vm]   --no-vm: everything but the VM runner's preparation
set -euo pipefail
cd "$(dirname "$0")/.."
prepare_vm=1
[[ ${1:-} == --no-vm ]] && prepare_vm=0

if [[ $(id -u) != 0 ]]; then
  echo "install-deps.sh: installs Debian packages: run it as root (sudo tests/install-deps.sh)" >&2
  exit 1
fi

have_static_libc() {
  [[ -n $(find /usr/lib /usr/lib64 -name libc.a -print -quit 2>/dev/null) ]]
}

packages=()
command -v busybox >/dev/null || [[ -x /bin/busybox ]] || packages+=(busybox-static)
command -v cc >/dev/null || packages+=(gcc)
have_static_libc || packages+=(libc6-dev)
command -v strace >/dev/null || packages+=(strace)
command -v ip >/dev/null || packages+=(iproute2)
command -v bwrap >/dev/null || packages+=(bubblewrap)
{ command -v setpriv && command -v unshare; } >/dev/null || packages+=(util-linux)
command -v script >/dev/null || packages+=(bsdutils)
command -v xmllint >/dev/null || packages+=(libxml2-utils)
command -v python3 >/dev/null || packages+=(python3)
installed=()
if (( ${#packages[@]} )); then
  echo "install-deps.sh: apt-get install ${packages[*]}"
  log=$(mktemp)
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "install-deps.sh: apt-get install ${packages[*]} failed (log above)" >&2
    exit 1
  fi
  rm -f "$log"
  installed+=("${packages[@]}")
fi
# Checked again: a package that installed but does not provide what the tests use is an error here,
# not a test failure later.
[[ -x /bin/busybox ]] || { echo "install-deps.sh: /bin/busybox missing after installing busybox-static" >&2; exit 1; }
have_static_libc || { echo "install-deps.sh: no libc.a after installing libc6-dev" >&2; exit 1; }

musl=$(uname -m)-unknown-linux-musl
if ! rustup target list --installed | grep -qx "$musl"; then
  echo "install-deps.sh: rustup target add $musl"
  rustup target add "$musl" >/dev/null 2>&1 || { rustup target add "$musl"; exit 1; }
  installed+=("$musl")
fi
# The standard libraries a crate with isolated tests is checked against off Linux
# (tests/outside-crate.sh): `cargo check` needs no linker for them.
for target in x86_64-apple-darwin x86_64-pc-windows-msvc; do
  if ! rustup target list --installed | grep -qx "$target"; then
    echo "install-deps.sh: rustup target add $target"
    rustup target add "$target" >/dev/null 2>&1 || { rustup target add "$target"; exit 1; }
    installed+=("$target")
  fi
done

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps.sh: cargo install --locked cargo-nextest"
  cargo install --locked --quiet cargo-nextest
  installed+=(cargo-nextest)
fi

if ! rustup component list --installed | grep -q '^llvm-tools'; then
  echo "install-deps.sh: rustup component add llvm-tools"
  rustup component add llvm-tools >/dev/null 2>&1 || { rustup component add llvm-tools; exit 1; }
  installed+=(llvm-tools)
fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
  echo "install-deps.sh: cargo install --locked cargo-llvm-cov"
  cargo install --locked --quiet cargo-llvm-cov
  installed+=(cargo-llvm-cov)
fi

if [[ $prepare_vm == 1 ]]; then
  vm=${SANDBOX_CGV2_VM:-../shared/cgroup2-vm/run-in-cgroup2-vm.sh}
  if [[ ! -x $vm ]]; then
    echo "install-deps.sh: the cgroup-v2 VM runner is not at $vm: set SANDBOX_CGV2_VM to its path" >&2
    exit 1
  fi
  # Quiet when its cache is complete (its "ready" line left out); says what it installs otherwise.
  # The systemd placements need systemd, dbus and libpam-systemd on the host (any one of them
  # prepares all three).
  for placement in "" "--systemd user-session"; do
    # shellcheck disable=SC2086  # $placement is empty or two words
    if ! out=$("$vm" --prepare $placement 2>&1); then
      echo "$out" >&2
      echo "install-deps.sh: $vm --prepare $placement failed (above)" >&2
      exit 1
    fi
    grep -v ': ready: ' <<<"$out" || true
  done
fi

if (( ${#installed[@]} )); then
  echo "install-deps.sh: installed ${installed[*]}"
else
  echo "install-deps.sh: everything the tests need is installed"
fi
