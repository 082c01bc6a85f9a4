use sandbox::isolated;

#[isolated(fs = "overly")]
fn misspelt_mode() {}

#[isolated(writable = "/srv/cache")]
fn writable_without_read_only() {}

#[isolated(fs = "ro", writable = ["srv/cache", "/a/../b"])]
fn relative_and_parent_paths() {}

fn main() {}
