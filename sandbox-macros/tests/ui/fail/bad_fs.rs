use sandbox::isolated;

#[isolated(fs = "overly")]
fn misspelt_mode() {}

#[isolated(writable = "/srv/cache")]
fn writable_without_read_only() {}

#[isolated(fs = "ro", writable = ["srv/cache", "/a/../b"])]
fn relative_and_parent_paths() {}

#[isolated(fs = "overlay", fs_size = "64Q")]
fn bad_layer_size() {}

#[isolated(fs = "overlay", host_writes = "maybe")]
fn bad_host_writes() {}

#[isolated(fs = "ro", host_writes = "fail")]
fn host_writes_without_overlay() {}

#[isolated(fs_size = "64M")]
fn fs_size_without_overlay() {}

fn main() {}
