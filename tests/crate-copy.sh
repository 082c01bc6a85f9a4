# Sourced by the scripts that build a crate of tests/ as a user would, outside this workspace:
#   copy_crate NAME [DIR]
# copies tests/NAME into DIR (kept: the caller removes it) or into a new directory below /var/tmp
# (removed when the script exits), points its `SANDBOX_PATH` dependency at this checkout, and
# changes into it with CARGO_TARGET_DIR there. Sets $dir and $repo.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
copy_crate() {
  local name=$1
  if [[ -n ${2:-} ]]; then
    dir=$2
  else
    dir=$(mktemp -d "/var/tmp/sandbox-$name.XXXXXX")
    trap 'rm -rf "$dir"' EXIT
  fi
  cp -r "$repo/tests/$name/." "$dir/"
  sed -i "s|SANDBOX_PATH|$repo/sandbox|" "$dir/Cargo.toml"
  cd "$dir"
  export CARGO_TARGET_DIR=$dir/target
}
