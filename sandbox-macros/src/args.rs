//! The arguments of `#[isolated(...)]`: parsed, checked and converted at compile time.
//!
//! [`parse`] reads `key = value` pairs into a [`Builder`], which has one setter per key and
//! remembers which keys it saw; [`Builder::build`] then checks the keys against each other.
//! Every problem is a [`syn::Error`] spanned at the offending token whose message says how to fix
//! it; all problems of one attribute are reported together.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Token};

// The same parser the CLI uses, so that sizes and durations mean the same and are rejected with
// the same messages.
use sandbox_units as units;
use units::{MAX_CPU_CORES, MAX_PIDS, MIN_CPU_CORES};

mod syntax;

use syntax::*;

/// The longest hostname the kernel accepts (`HOST_NAME_MAX`).
const MAX_HOSTNAME_LEN: usize = 64;

/// `net = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Net {
    /// The host's network (the default).
    #[default]
    Host,
    /// A network namespace with only `lo`.
    None,
}

/// `expect = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Expect {
    /// No `expect`: the body must succeed.
    #[default]
    Success,
    /// `expect = "oom"`.
    Oom,
    /// `expect = "pids_limit"`.
    PidsLimit,
    /// `expect = "timeout"`.
    Timeout,
}

/// `fs = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Fs {
    /// The host's file systems as they are (the default).
    #[default]
    Host,
    /// Every host mount read-only, except the `writable` paths.
    ReadOnly,
    /// Every host mount behind a copy-on-write layer: the host unchanged, the changes listed.
    Overlay,
}

/// `host_writes = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum HostWrites {
    /// The changes are thrown away and listed (the default).
    #[default]
    Discard,
    /// A change to the host's files fails the test.
    Fail,
}

/// One `tmpfs` mount: an absolute path and an optional size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tmpfs {
    pub(crate) path: String,
    pub(crate) size_bytes: Option<u64>,
}

/// The checked arguments, in the units the runtime's `TestSpec` uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Args {
    pub(crate) pids: Option<u64>,
    pub(crate) mem_bytes: Option<u64>,
    pub(crate) cpu_cores: Option<f64>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) hostname: Option<String>,
    pub(crate) tmpfs: Vec<Tmpfs>,
    pub(crate) net: Net,
    pub(crate) expect: Expect,
    /// `fs = "ro"` or `fs = "overlay"`: how the host's file systems are seen.
    pub(crate) fs: Fs,
    /// `writable = "PATH"` or a list: what is written straight to the host under `fs = "ro"`
    /// or `fs = "overlay"`.
    pub(crate) writable: Vec<String>,
    /// `fs_size = "SIZE"`: the most the overlay's layer holds, in bytes.
    pub(crate) fs_size: Option<u64>,
    /// `host_writes = "fail"`: a change to the host's files fails the test.
    pub(crate) host_writes: HostWrites,
    /// `privileged = true`: as root, the test gets the host's root instead of running contained.
    pub(crate) privileged: bool,
    /// `require = "cgroup"`: fail rather than fall back to rlimits (rootless, no delegated cgroup).
    pub(crate) require_cgroup: bool,
    /// `baseline_tolerance = "10%+1M"`: how far the peak memory may grow over its baseline.
    pub(crate) baseline_tolerance: Option<units::Tolerance>,
    /// `crate = "path"`: where the runtime is, for a dependency renamed or re-exported in a way
    /// the Cargo.toml lookup does not see; a checked path.
    pub(crate) krate: Option<CratePath>,
}

/// The `crate = "..."` path, with the string's span: a path that does not resolve is reported
/// at the string.
#[derive(Clone)]
pub(crate) struct CratePath {
    pub(crate) path: syn::Path,
}

impl CratePath {
    /// The path as written, without spaces (`::reexports::sandbox`).
    pub(crate) fn text(&self) -> String {
        self.path.to_token_stream().to_string().replace(' ', "")
    }
}

/// The path as written (syn's `Debug` for paths needs its `extra-traits` feature).
impl std::fmt::Debug for CratePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CratePath({})", self.text())
    }
}

/// Paths are equal when they are written the same (spans aside).
impl PartialEq for CratePath {
    fn eq(&self, other: &CratePath) -> bool {
        self.text() == other.text()
    }
}

/// The keys `#[isolated]` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Pids,
    Mem,
    Cpu,
    Timeout,
    Hostname,
    Tmpfs,
    Net,
    Fs,
    Writable,
    FsSize,
    HostWrites,
    Privileged,
    Expect,
    Require,
    BaselineTolerance,
    Crate,
}

impl Key {
    /// Every key, in the order the error messages list them.
    const ALL: [Key; 16] = [
        Key::Pids,
        Key::Mem,
        Key::Cpu,
        Key::Timeout,
        Key::Hostname,
        Key::Tmpfs,
        Key::Net,
        Key::Fs,
        Key::Writable,
        Key::FsSize,
        Key::HostWrites,
        Key::Privileged,
        Key::Expect,
        Key::Require,
        Key::BaselineTolerance,
        Key::Crate,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::Pids => "pids",
            Key::Mem => "mem",
            Key::Cpu => "cpu",
            Key::Timeout => "timeout",
            Key::Hostname => "hostname",
            Key::Tmpfs => "tmpfs",
            Key::Net => "net",
            Key::Fs => "fs",
            Key::Writable => "writable",
            Key::FsSize => "fs_size",
            Key::HostWrites => "host_writes",
            Key::Privileged => "privileged",
            Key::Expect => "expect",
            Key::Require => "require",
            Key::BaselineTolerance => "baseline_tolerance",
            Key::Crate => "crate",
        }
    }

    /// A correct use of the key, for error messages.
    fn example(self) -> &'static str {
        match self {
            Key::Pids => "pids = 20",
            Key::Mem => "mem = \"100M\"",
            Key::Cpu => "cpu = 0.5",
            Key::Timeout => "timeout = \"5s\"",
            Key::Hostname => "hostname = \"box\"",
            Key::Tmpfs => "tmpfs = \"/scratch:64M\"",
            Key::Net => "net = \"none\"",
            Key::Fs => "fs = \"ro\"",
            Key::Writable => "writable = [\"/srv/cache\"]",
            Key::FsSize => "fs_size = \"64M\"",
            Key::HostWrites => "host_writes = \"fail\"",
            Key::Privileged => "privileged = true",
            Key::Expect => "expect = \"oom\"",
            Key::Require => "require = \"cgroup\"",
            Key::BaselineTolerance => "baseline_tolerance = \"25%+4M\"",
            Key::Crate => "crate = \"my_sandbox\"",
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }

    /// The key someone writing `name` probably meant.
    fn guess(name: &str) -> Option<Key> {
        let key = match name {
            "pid" | "max_pids" | "processes" => Key::Pids,
            "memory" | "mem_bytes" | "memory_bytes" | "memory_limit" => Key::Mem,
            "cpus" | "cores" | "cpu_cores" => Key::Cpu,
            "time" | "time_limit" | "timeout_ms" | "deadline" => Key::Timeout,
            "host" | "host_name" => Key::Hostname,
            "tmp" | "tmpdir" | "scratch" => Key::Tmpfs,
            "network" | "networking" => Key::Net,
            "filesystem" | "file_system" | "files" | "read_only" | "readonly" | "overlay" | "cow" => Key::Fs,
            "writeable" | "rw" | "writable_paths" => Key::Writable,
            "fs_limit" | "fs_max" | "layer_size" | "overlay_size" | "fssize" => Key::FsSize,
            "host_write" | "hostwrites" | "on_host_writes" | "host_changes" => Key::HostWrites,
            "privilege" | "privileges" | "root" | "host_root" | "unconfined" => Key::Privileged,
            "expected" | "expects" | "outcome" => Key::Expect,
            "tolerance" | "mem_tolerance" | "baseline" => Key::BaselineTolerance,
            _ => return None,
        };
        Some(key)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Collects the arguments key by key; one setter per key.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    args: Args,
    /// Where each key was given (even if its value was rejected), by [`Key::index`].
    seen: [Option<Span>; Key::ALL.len()],
    /// Where `expect`'s value was written, for the consistency errors.
    expect_span: Option<Span>,
}

/// Parses the tokens inside `#[isolated(...)]`.
pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
    let list = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut builder = Builder::default();
    let mut errors = Errors::default();
    for arg in &list {
        errors.push(builder.set(arg));
    }
    errors.finish()?;
    builder.build()
}

impl Builder {
    /// Sets one `key = value` argument.
    fn set(&mut self, arg: &Arg) -> syn::Result<()> {
        let path = &arg.key;
        let key = path
            .get_ident()
            .and_then(|ident| Key::from_name(&ident.to_string()))
            .ok_or_else(|| unknown_key(path))?;
        if self.seen[key.index()].is_some() {
            return Err(syn::Error::new_spanned(
                path,
                format!("duplicate argument `{}`; give each argument once", key.name()),
            ));
        }
        self.seen[key.index()] = Some(path.span());
        let value = match &arg.value {
            ArgValue::Expr(value) => value,
            ArgValue::Missing => {
                return Err(syn::Error::new_spanned(
                    path,
                    format!("`{}` needs a value, e.g. `{}`", key.name(), key.example()),
                ))
            }
            ArgValue::Group(group) => {
                return Err(syn::Error::new_spanned(
                    quote::quote!(#path #group),
                    format!("write `{}` as `key = value`, e.g. `{}`", key.name(), key.example()),
                ))
            }
        };
        let value = peel(value);
        match key {
            Key::Pids => self.set_pids(value),
            Key::Mem => self.set_mem(value),
            Key::Cpu => self.set_cpu(value),
            Key::Timeout => self.set_timeout(value),
            Key::Hostname => self.set_hostname(value),
            Key::Tmpfs => self.set_tmpfs(value),
            Key::Net => self.set_net(value),
            Key::Fs => self.set_fs(value),
            Key::Writable => self.set_writable(value),
            Key::FsSize => self.set_fs_size(value),
            Key::HostWrites => self.set_host_writes(value),
            Key::Privileged => self.set_privileged(value),
            Key::Expect => self.set_expect(value),
            Key::Require => self.set_require(value),
            Key::BaselineTolerance => self.set_baseline_tolerance(value),
            Key::Crate => self.set_crate(value),
        }
    }

    /// `pids = N`, N ≥ 1.
    fn set_pids(&mut self, value: &Expr) -> syn::Result<()> {
        const RULE: &str = "`pids` must be a whole number of at least 1, e.g. `pids = 20`";
        let pids = match literal(value) {
            // syn reads `-1` after `=` as one negative literal.
            Some(Lit::Int(int)) if int.base10_digits().starts_with('-') => {
                return Err(syn::Error::new_spanned(value, format!("{RULE}, not a negative number")))
            }
            Some(Lit::Int(int)) => {
                check_int_suffix(int.suffix(), value, "pids = 20")?;
                let too_large = |max: &str| {
                    syn::Error::new_spanned(
                        value,
                        format!("`pids = {}` is too large{max}; {RULE}", int.base10_digits()),
                    )
                };
                let pids = int.base10_parse::<u64>().map_err(|_| too_large(""))?;
                if pids > MAX_PIDS {
                    return Err(too_large(&format!(": the kernel allows at most {MAX_PIDS} processes in a cgroup")));
                }
                pids
            }
            Some(Lit::Float(_)) => {
                return Err(syn::Error::new_spanned(value, format!("{RULE}, not a fraction")))
            }
            Some(Lit::Str(text)) => {
                let hint = match text.value().trim().parse::<u64>() {
                    Ok(number) if (1..=MAX_PIDS).contains(&number) => {
                        format!("write it without quotes: `pids = {number}`")
                    }
                    _ => RULE.to_string(),
                };
                return Err(syn::Error::new_spanned(
                    value,
                    format!("`pids` takes an integer, not a string; {hint}"),
                ));
            }
            _ if is_negation(value) => {
                return Err(syn::Error::new_spanned(value, format!("{RULE}, not a negative number")))
            }
            _ => return Err(syn::Error::new_spanned(value, RULE)),
        };
        if pids == 0 {
            return Err(syn::Error::new_spanned(
                value,
                format!("{RULE}: with `pids = 0` not even the test process could start"),
            ));
        }
        self.args.pids = Some(pids);
        Ok(())
    }

    /// `mem = "SIZE"`.
    fn set_mem(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::Mem, "a size with a unit")?;
        let bytes = units::parse_size(&text.value()).map_err(|err| syn::Error::new_spanned(value, err))?;
        self.args.mem_bytes = Some(bytes);
        Ok(())
    }

    /// `baseline_tolerance = "PERCENT%+SIZE"`.
    fn set_baseline_tolerance(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::BaselineTolerance, "a percentage of the baseline, a size, or both")?;
        let tolerance = units::parse_tolerance(&text.value()).map_err(|err| syn::Error::new_spanned(value, err))?;
        self.args.baseline_tolerance = Some(tolerance);
        Ok(())
    }

    /// `cpu = CORES`, as a number or a string.
    fn set_cpu(&mut self, value: &Expr) -> syn::Result<()> {
        let rule = format!(
            "`cpu` must be a number of cores from {MIN_CPU_CORES} to {MAX_CPU_CORES}, e.g. `cpu = 0.5` or `cpu = 2`"
        );
        let cores = match literal(value) {
            Some(Lit::Float(float)) => {
                if !matches!(float.suffix(), "" | "f64" | "f32") {
                    return Err(syn::Error::new_spanned(
                        value,
                        format!("{rule}; remove the suffix `{}`", float.suffix()),
                    ));
                }
                float.base10_parse::<f64>().map_err(|_| syn::Error::new_spanned(value, rule.clone()))?
            }
            Some(Lit::Int(int)) => {
                check_int_suffix(int.suffix(), value, "cpu = 2")?;
                int.base10_parse::<u64>().map_err(|_| syn::Error::new_spanned(value, rule.clone()))? as f64
            }
            Some(Lit::Str(text)) => text.value().trim().parse::<f64>().map_err(|_| {
                syn::Error::new_spanned(
                    value,
                    format!("`cpu = \"{}\"` is not a number; {rule}", text.value()),
                )
            })?,
            _ => return Err(syn::Error::new_spanned(value, rule)),
        };
        if !(cores.is_finite() && (MIN_CPU_CORES..=MAX_CPU_CORES).contains(&cores)) {
            return Err(syn::Error::new_spanned(value, rule));
        }
        self.args.cpu_cores = Some(cores);
        Ok(())
    }

    /// `timeout = "DURATION"`.
    fn set_timeout(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::Timeout, "a duration with a unit")?;
        let duration =
            units::parse_duration(&text.value()).map_err(|err| syn::Error::new_spanned(value, err))?;
        // parse_duration builds its durations from 64-bit milliseconds; never seen, but say so clearly.
        let millis = u64::try_from(duration.as_millis()).map_err(|_| {
            syn::Error::new_spanned(
                value,
                format!("this timeout is too large; write e.g. `{}`", Key::Timeout.example()),
            )
        })?;
        self.args.timeout_ms = Some(millis);
        Ok(())
    }

    /// `hostname = "NAME"`.
    fn set_hostname(&mut self, value: &Expr) -> syn::Result<()> {
        let hostname = string(value, Key::Hostname, "a host name")?.value();
        let rule = format!(
            "a hostname is 1 to {MAX_HOSTNAME_LEN} characters of A-Z, a-z, 0-9, `.` and `-`, e.g. `hostname = \"box\"`"
        );
        let problem = if hostname.is_empty() {
            Some("it is empty".to_string())
        } else if hostname.chars().count() > MAX_HOSTNAME_LEN {
            Some(format!("it is {} characters long", hostname.chars().count()))
        } else {
            hostname
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-'))
                .map(|c| format!("it contains {c:?}"))
        };
        if let Some(problem) = problem {
            return Err(syn::Error::new_spanned(
                value,
                format!("invalid hostname \"{hostname}\": {problem}; {rule}"),
            ));
        }
        self.args.hostname = Some(hostname);
        Ok(())
    }

    /// `tmpfs = "PATH[:SIZE]"` or `tmpfs = ["PATH[:SIZE]", ...]`.
    fn set_tmpfs(&mut self, value: &Expr) -> syn::Result<()> {
        const RULE: &str = "`tmpfs` takes \"PATH\" or \"PATH:SIZE\", or a list of them, \
                            e.g. `tmpfs = \"/scratch:64M\"` or `tmpfs = [\"/a\", \"/b:1M\"]`";
        each_string(value, RULE, |text| parse_tmpfs(&text).map(|tmpfs| self.args.tmpfs.push(tmpfs)))
    }

    /// `net = "none" | "host"`.
    fn set_net(&mut self, value: &Expr) -> syn::Result<()> {
        let choices = [("none", Net::None), ("host", Net::Host)];
        self.args.net =
            one_of(value, Key::Net, &choices, "network mode", "\"none\" (only loopback) and \"host\"")?;
        Ok(())
    }

    /// `fs = "host" | "ro" | "overlay"`.
    fn set_fs(&mut self, value: &Expr) -> syn::Result<()> {
        let choices = [("ro", Fs::ReadOnly), ("overlay", Fs::Overlay), ("host", Fs::Host)];
        let valid = "\"ro\" (every host mount read-only but the `writable` paths), \"overlay\" (the host's \
                     files behind a copy-on-write layer: left unchanged, the test's changes listed) and \"host\" \
                     (the default)";
        self.args.fs = one_of(value, Key::Fs, &choices, "file-system mode", valid)?;
        Ok(())
    }

    /// `fs_size = "SIZE"`, parsed as `mem` is.
    fn set_fs_size(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::FsSize, "a size with a unit")?;
        let bytes = units::parse_size(&text.value()).map_err(|err| syn::Error::new_spanned(value, err))?;
        self.args.fs_size = Some(bytes);
        Ok(())
    }

    /// `host_writes = "discard" | "fail"`.
    fn set_host_writes(&mut self, value: &Expr) -> syn::Result<()> {
        let choices = [("discard", HostWrites::Discard), ("fail", HostWrites::Fail)];
        let valid = "\"discard\" (the changes thrown away and listed, the default) and \"fail\" (a change to \
                     the host's files fails the test)";
        self.args.host_writes = one_of(value, Key::HostWrites, &choices, "`host_writes` value", valid)?;
        Ok(())
    }

    /// `privileged = true | false`.
    fn set_privileged(&mut self, value: &Expr) -> syn::Result<()> {
        self.args.privileged = boolean(value, Key::Privileged)?;
        Ok(())
    }

    /// `writable = "PATH"` or `writable = ["PATH", ...]`: absolute paths without `..`.
    fn set_writable(&mut self, value: &Expr) -> syn::Result<()> {
        const RULE: &str = "`writable` takes an absolute path or a list of them, \
                            e.g. `writable = \"/srv/cache\"` or `writable = [\"/srv/a\", \"/srv/b\"]`";
        each_string(value, RULE, |path| {
            let problem = if path.contains('\0') {
                "it contains a NUL byte, which no path can"
            } else if !path.starts_with('/') {
                "it is not absolute; write it from the root, e.g. \"/srv/cache\""
            } else if path.split('/').any(|part| part == "..") {
                "it contains `..`; write the path without it"
            } else {
                self.args.writable.push(path);
                return Ok(());
            };
            Err(format!("invalid writable path \"{path}\": {problem}"))
        })
    }

    /// `require = "cgroup"`.
    fn set_require(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::Require, "\"cgroup\"")?;
        if text.value() != "cgroup" {
            return Err(syn::Error::new_spanned(
                value,
                format!(
                    "unknown requirement \"{}\"; the only one is \"cgroup\" (every limit enforced by a cgroup, \
                     never by the rlimit fallback)",
                    text.value()
                ),
            ));
        }
        self.args.require_cgroup = true;
        Ok(())
    }

    /// `crate = "path"`: a path such as `my_sandbox` or `::reexports::sandbox`.
    fn set_crate(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::Crate, "the path of the test-sandbox library as your code names it")?;
        let path = text.parse_with(syn::Path::parse_mod_style).map_err(|_| {
            syn::Error::new_spanned(
                value,
                format!(
                    "`crate` must be a path, e.g. `crate = \"my_sandbox\"` or `crate = \"::reexports::sandbox\"`, not \"{}\"",
                    text.value()
                ),
            )
        })?;
        self.args.krate = Some(CratePath { path });
        Ok(())
    }

    /// `expect = "oom" | "pids_limit" | "timeout"`.
    fn set_expect(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::Expect, "\"oom\", \"pids_limit\" or \"timeout\"")?;
        self.args.expect = match text.value().as_str() {
            "oom" => Expect::Oom,
            "pids_limit" => Expect::PidsLimit,
            "timeout" => Expect::Timeout,
            other => {
                return Err(syn::Error::new_spanned(
                    value,
                    format!(
                        "unknown expectation \"{other}\"; valid values are \"oom\", \"pids_limit\" and \"timeout\" \
                         (leave `expect` out for a test that must succeed)"
                    ),
                ))
            }
        };
        self.expect_span = Some(value.span());
        Ok(())
    }

    /// Checks the keys against each other.
    fn build(self) -> syn::Result<Args> {
        let mut errors = Errors::default();
        let needs = match self.args.expect {
            Expect::Success => None,
            Expect::Oom => Some((Key::Mem, "\"oom\"", "a memory limit to exceed", "mem = \"64M\"")),
            Expect::PidsLimit => Some((Key::Pids, "\"pids_limit\"", "a pids limit to hit", "pids = 16")),
            Expect::Timeout => Some((Key::Timeout, "\"timeout\"", "a timeout to fire", "timeout = \"1s\"")),
        };
        // The file-system keys mean nothing without the mode they belong to.
        if let (Some(span), Fs::Host) = (self.seen[Key::Writable.index()], self.args.fs) {
            errors.push(Err(syn::Error::new(
                span,
                "`writable` names paths written straight to the host under `fs = \"ro\"` or \
                 `fs = \"overlay\"`: add one, e.g. `#[isolated(fs = \"ro\", writable = [\"/srv/cache\"])]`",
            )));
        }
        if self.args.fs != Fs::Overlay {
            if let Some(span) = self.seen[Key::FsSize.index()] {
                errors.push(Err(syn::Error::new(
                    span,
                    "`fs_size` bounds the copy-on-write layer of `fs = \"overlay\"`: add it, \
                     e.g. `#[isolated(fs = \"overlay\", fs_size = \"64M\")]`",
                )));
            }
            if let (Some(span), HostWrites::Fail) = (self.seen[Key::HostWrites.index()], self.args.host_writes) {
                errors.push(Err(syn::Error::new(
                    span,
                    "`host_writes = \"fail\"` fails a test that changed the host's files, which only \
                     `fs = \"overlay\"` sees: add it, e.g. `#[isolated(fs = \"overlay\", host_writes = \"fail\")]`",
                )));
            }
        }
        if let Some((key, expect, what, example)) = needs {
            if self.seen[key.index()].is_none() {
                errors.push(Err(syn::Error::new(
                    self.expect_span.unwrap_or_else(Span::call_site),
                    format!(
                        "`expect = {expect}` needs {what}: add `{}`, e.g. `#[isolated({example}, expect = {expect})]`",
                        key.name()
                    ),
                )));
            }
        }
        errors.finish()?;
        Ok(self.args)
    }
}

/// Checks a `tmpfs` entry, `PATH` or `PATH:SIZE`, like the CLI's `--tmpfs`, and normalizes the
/// path (`/a//b/` is `/a/b`) so that it compares equal to the default `/tmp` mount it may replace.
fn parse_tmpfs(text: &str) -> Result<Tmpfs, String> {
    let (path, size) = match text.split_once(':') {
        Some((path, size)) => (path, Some(size)),
        None => (text, None),
    };
    // The runtime turns the path into a C string, and panics on a NUL byte.
    if path.contains('\0') {
        return Err(format!("tmpfs path {path:?} contains a NUL byte, which no path can; remove it"));
    }
    if !path.starts_with('/') {
        return Err(format!("tmpfs path \"{path}\" is not absolute; write e.g. `tmpfs = \"/scratch\"`"));
    }
    let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty() && *part != ".").collect();
    if parts.contains(&"..") {
        return Err(format!("tmpfs path \"{path}\" contains `..`; write the path without it"));
    }
    if parts.is_empty() {
        return Err(
            "a tmpfs over `/` would hide the whole file system; mount it on a directory, e.g. \"/scratch\""
                .into(),
        );
    }
    let size_bytes = size.map(units::parse_size).transpose().map_err(|err| err.to_string())?;
    Ok(Tmpfs { path: format!("/{}", parts.join("/")), size_bytes })
}

/// Gathers errors so that one compile reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, result: syn::Result<()>) {
        if let Err(err) = result {
            match &mut self.0 {
                Some(errors) => errors.combine(err),
                None => self.0 = Some(err),
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
