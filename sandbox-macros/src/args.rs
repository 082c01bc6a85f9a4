//! The arguments of `#[isolated(...)]`: parsed, checked and converted at compile time.
//!
//! [`parse`] reads `key = value` pairs into a [`Builder`], which has one setter per key and
//! remembers which keys it saw; [`Builder::build`] then checks the keys against each other.
//! Every problem is a [`syn::Error`] spanned at the offending token whose message says how to fix
//! it; all problems of one attribute are reported together.

use proc_macro2::{Delimiter, Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Token, UnOp};

// The same parser the CLI uses, so that sizes and durations mean the same and are rejected with
// the same messages.
use sandbox_units as units;
use units::{MAX_CPU_CORES, MAX_PIDS, MIN_CPU_CORES};

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
    /// `require = "cgroup"`: fail rather than fall back to rlimits (rootless, no delegated cgroup).
    pub(crate) require_cgroup: bool,
    /// `crate = "path"`: where the runtime is, for a dependency renamed or re-exported in a way
    /// the Cargo.toml lookup does not see; a checked path.
    pub(crate) krate: Option<CratePath>,
}

/// The `crate = "..."` path, with the string's span: a path that does not resolve is reported
/// at the string.
#[derive(Debug, Clone)]
pub(crate) struct CratePath {
    pub(crate) path: syn::Path,
}

impl CratePath {
    /// The path as written, without spaces (`::reexports::sandbox`).
    pub(crate) fn text(&self) -> String {
        self.path.to_token_stream().to_string().replace(' ', "")
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
    Expect,
    Require,
    Crate,
}

impl Key {
    /// Every key, in the order the error messages list them.
    const ALL: [Key; 10] = [
        Key::Pids,
        Key::Mem,
        Key::Cpu,
        Key::Timeout,
        Key::Hostname,
        Key::Tmpfs,
        Key::Net,
        Key::Expect,
        Key::Require,
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
            Key::Expect => "expect",
            Key::Require => "require",
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
            Key::Expect => "expect = \"oom\"",
            Key::Require => "require = \"cgroup\"",
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
            "expected" | "expects" | "outcome" => Key::Expect,
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

/// One argument as written.
///
/// `syn::Meta` is not used because it reads `-1` as one literal, whose span would cover only
/// the `-` in error messages; here the value is a plain expression.
struct Arg {
    key: syn::Path,
    value: ArgValue,
}

enum ArgValue {
    /// `key = value`.
    Expr(Expr),
    /// `key` alone.
    Missing,
    /// `key(...)`, `key[...]` or `key{...}`.
    Group(proc_macro2::Group),
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // syn's own "expected identifier" would not say which names there are.
        if !(input.peek(syn::Ident::peek_any) || input.peek(Token![::])) {
            return Err(not_a_key(input));
        }
        // A keyword (`type = 1`) is reported as an unknown argument, not as a syntax error.
        let key = if input.peek(syn::Ident::peek_any) && !input.peek2(Token![::]) {
            syn::Path::from(input.call(syn::Ident::parse_any)?)
        } else {
            input.call(syn::Path::parse_mod_style)?
        };
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            ArgValue::Expr(input.parse()?)
        } else if let Some(group) = delimited_group(input)? {
            ArgValue::Group(group)
        } else if input.is_empty() || input.peek(Token![,]) {
            ArgValue::Missing
        } else {
            // `pids: 20`, `pids 20`: syn would only say "expected `,`" at the value.
            let name = key.to_token_stream().to_string().replace(' ', "");
            let example = key.get_ident().and_then(|ident| Key::from_name(&ident.to_string())).unwrap_or(Key::Pids);
            return Err(input.error(format!(
                "expected `=` after `{name}`: write arguments as `key = value`, e.g. `{}`",
                example.example()
            )));
        };
        Ok(Arg { key, value })
    }
}

/// `(...)`, `[...]` or `{...}` next, if there is one.
///
/// `input.peek(token::Paren)` sees through the invisible groups `macro_rules!` makes but
/// `input.parse::<Group>()` does not, which made `«pids» «()»` an "expected group token" error;
/// the cursor looks through them in both steps.
fn delimited_group(input: ParseStream) -> syn::Result<Option<proc_macro2::Group>> {
    input.step(|cursor| {
        for delimiter in [Delimiter::Parenthesis, Delimiter::Bracket, Delimiter::Brace] {
            if let Some((inside, span, rest)) = cursor.group(delimiter) {
                let mut group = proc_macro2::Group::new(delimiter, inside.token_stream());
                group.set_span(span.join());
                return Ok((Some(group), rest));
            }
        }
        Ok((None, *cursor))
    })
}

/// The error for a token where an argument's name belongs: `"pids" = 1`, `= 1`, `pids = 1,, mem`.
fn not_a_key(input: ParseStream) -> syn::Error {
    let valid = Key::ALL.map(Key::name).join(", ");
    let hint = match input.fork().parse::<LitStr>() {
        Ok(text) if Key::from_name(&text.value()).is_some() => format!(" (write `{}` without quotes)", text.value()),
        _ => String::new(),
    };
    input.error(format!("expected an argument name, e.g. `pids = 20`; valid arguments are: {valid}{hint}"))
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
            Key::Expect => self.set_expect(value),
            Key::Require => self.set_require(value),
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
        let elements: Vec<&Expr> = match value {
            Expr::Array(array) => array.elems.iter().map(peel).collect(),
            _ => vec![value],
        };
        let mut errors = Errors::default();
        for element in elements {
            match literal(element) {
                Some(Lit::Str(text)) => match parse_tmpfs(&text.value()) {
                    Ok(tmpfs) => self.args.tmpfs.push(tmpfs),
                    Err(message) => errors.push(Err(syn::Error::new_spanned(element, message))),
                },
                _ => errors.push(Err(syn::Error::new_spanned(element, RULE))),
            }
        }
        errors.finish()
    }

    /// `net = "none" | "host"`.
    fn set_net(&mut self, value: &Expr) -> syn::Result<()> {
        let text = string(value, Key::Net, "\"none\" or \"host\"")?;
        self.args.net = match text.value().as_str() {
            "host" => Net::Host,
            "none" => Net::None,
            other => {
                return Err(syn::Error::new_spanned(
                    value,
                    format!("unknown network mode \"{other}\"; valid values are \"none\" (only loopback) and \"host\""),
                ))
            }
        };
        Ok(())
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
                    "`crate` must be a path such as \"my_sandbox\" or \"::reexports::sandbox\", not \"{}\"",
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
        let needs = match self.args.expect {
            Expect::Success => None,
            Expect::Oom => Some((Key::Mem, "\"oom\"", "a memory limit to exceed", "mem = \"64M\"")),
            Expect::PidsLimit => Some((Key::Pids, "\"pids_limit\"", "a pids limit to hit", "pids = 16")),
            Expect::Timeout => Some((Key::Timeout, "\"timeout\"", "a timeout to fire", "timeout = \"1s\"")),
        };
        if let Some((key, expect, what, example)) = needs {
            if self.seen[key.index()].is_none() {
                return Err(syn::Error::new(
                    self.expect_span.unwrap_or_else(Span::call_site),
                    format!(
                        "`expect = {expect}` needs {what}: add `{}`, e.g. `#[isolated({example}, expect = {expect})]`",
                        key.name()
                    ),
                ));
            }
        }
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

/// `unknown argument`, with the valid ones and a guess.
fn unknown_key(path: &syn::Path) -> syn::Error {
    let name = path.to_token_stream().to_string().replace(' ', "");
    let valid = Key::ALL.map(Key::name).join(", ");
    let mut message = format!("unknown argument `{name}`; valid arguments are: {valid}");
    if let Some(key) = Key::guess(&name) {
        message.push_str(&format!(" (did you mean `{}`?)", key.name()));
    }
    syn::Error::new_spanned(path, message)
}

/// The value as a string literal, or an error showing how to write it.
fn string(value: &Expr, key: Key, what: &str) -> syn::Result<LitStr> {
    match literal(value) {
        Some(Lit::Str(text)) => Ok(text.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{}` takes a string: {what}, e.g. `{}`", key.name(), key.example()),
        )),
    }
}

/// Integer literals may carry an integer type suffix (`20u64`), nothing else.
fn check_int_suffix(suffix: &str, value: &Expr, example: &str) -> syn::Result<()> {
    const INTEGER_TYPES: [&str; 12] =
        ["", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128"];
    if INTEGER_TYPES.contains(&suffix) || suffix == "isize" {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            value,
            format!("unexpected suffix `{suffix}`; write a plain number, e.g. `{example}`"),
        ))
    }
}

/// The literal the value is, if it is one.
fn literal(value: &Expr) -> Option<&Lit> {
    match peel(value) {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

/// `-x`.
fn is_negation(value: &Expr) -> bool {
    matches!(peel(value), Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)))
}

/// Looks through parentheses and the invisible groups `macro_rules!` puts around `$x:expr`.
fn peel(mut value: &Expr) -> &Expr {
    loop {
        match value {
            Expr::Group(group) => value = &group.expr,
            Expr::Paren(paren) => value = &paren.expr,
            _ => return value,
        }
    }
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

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn ok(tokens: TokenStream) -> Args {
        parse(tokens.clone()).unwrap_or_else(|err| panic!("`{tokens}` was rejected: {err}"))
    }

    /// Every message of the error (combined errors give several).
    fn errs(tokens: TokenStream) -> Vec<String> {
        match parse(tokens.clone()) {
            Ok(args) => panic!("`{tokens}` was accepted: {args:?}"),
            Err(err) => err.into_iter().map(|err| err.to_string()).collect(),
        }
    }

    /// The single error message.
    fn err(tokens: TokenStream) -> String {
        let errs = errs(tokens);
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn no_arguments_is_the_default() {
        assert_eq!(ok(quote!()), Args::default());
        assert_eq!(ok(quote!()).net, Net::Host);
        assert_eq!(ok(quote!()).expect, Expect::Success);
    }

    #[test]
    fn every_key() {
        let args = ok(quote!(
            pids = 20,
            mem = "100M",
            cpu = 0.5,
            timeout = "5s",
            hostname = "box-1.local",
            tmpfs = ["/scratch", "/data:1M"],
            net = "none",
            expect = "oom",
            require = "cgroup",
            crate = "::reexports::sandbox",
        ));
        assert_eq!(
            args,
            Args {
                pids: Some(20),
                mem_bytes: Some(100 << 20),
                cpu_cores: Some(0.5),
                timeout_ms: Some(5000),
                hostname: Some("box-1.local".into()),
                tmpfs: vec![
                    Tmpfs { path: "/scratch".into(), size_bytes: None },
                    Tmpfs { path: "/data".into(), size_bytes: Some(1 << 20) },
                ],
                net: Net::None,
                expect: Expect::Oom,
                require_cgroup: true,
                krate: Some(CratePath { path: syn::parse_quote!(::reexports::sandbox) }),
            }
        );
    }

    #[test]
    fn parses_with_syn_parse_quote_and_parse_str() {
        let attr: syn::Attribute = syn::parse_quote!(#[isolated(pids = 3, net = "host")]);
        let syn::Meta::List(list) = attr.meta else { panic!("not a list") };
        let args = ok(list.tokens);
        assert_eq!(args.pids, Some(3));
        assert_eq!(args.net, Net::Host);
        let tokens: TokenStream = syn::parse_str(r#"timeout = "250ms", expect = "timeout""#).unwrap();
        assert_eq!(ok(tokens).timeout_ms, Some(250));
    }

    #[test]
    fn pids() {
        assert_eq!(ok(quote!(pids = 1)).pids, Some(1));
        assert_eq!(ok(quote!(pids = 20u64)).pids, Some(20));
        assert_eq!(ok(quote!(pids = 1_000)).pids, Some(1000));
        assert_eq!(ok(quote!(pids = (7))).pids, Some(7));
        let rule = "`pids` must be a whole number of at least 1, e.g. `pids = 20`";
        assert_eq!(
            err(quote!(pids = 0)),
            format!("{rule}: with `pids = 0` not even the test process could start")
        );
        assert_eq!(err(quote!(pids = -1)), format!("{rule}, not a negative number"));
        assert_eq!(err(quote!(pids = -(1))), format!("{rule}, not a negative number"));
        assert_eq!(err(quote!(pids = 2.5)), format!("{rule}, not a fraction"));
        assert_eq!(
            err(quote!(pids = "20")),
            "`pids` takes an integer, not a string; write it without quotes: `pids = 20`"
        );
        assert_eq!(err(quote!(pids = "many")), format!("`pids` takes an integer, not a string; {rule}"));
        assert_eq!(err(quote!(pids = N)), rule);
        assert_eq!(
            err(quote!(pids = 99999999999999999999)),
            format!("`pids = 99999999999999999999` is too large; {rule}")
        );
        assert_eq!(err(quote!(pids = 5ms)), "unexpected suffix `ms`; write a plain number, e.g. `pids = 20`");
    }

    #[test]
    fn mem() {
        assert_eq!(ok(quote!(mem = "4096")).mem_bytes, Some(4096));
        assert_eq!(ok(quote!(mem = "1G")).mem_bytes, Some(1 << 30));
        assert_eq!(
            err(quote!(mem = "100Q")),
            "invalid size '100Q': unknown unit; write a whole number with an optional unit \
             K, M, G or T (powers of 1024), e.g. 100M or 1G"
        );
        assert!(err(quote!(mem = "0")).starts_with("invalid size '0': it must be greater than zero;"));
        assert_eq!(err(quote!(mem = 100)), "`mem` takes a string: a size with a unit, e.g. `mem = \"100M\"`");
    }

    #[test]
    fn cpu() {
        assert_eq!(ok(quote!(cpu = 0.5)).cpu_cores, Some(0.5));
        assert_eq!(ok(quote!(cpu = 2)).cpu_cores, Some(2.0));
        assert_eq!(ok(quote!(cpu = 1.5f64)).cpu_cores, Some(1.5));
        assert_eq!(ok(quote!(cpu = "0.25")).cpu_cores, Some(0.25));
        assert_eq!(ok(quote!(cpu = 4096)).cpu_cores, Some(4096.0));
        assert_eq!(ok(quote!(cpu = 0.001)).cpu_cores, Some(0.001));
        let rule = "`cpu` must be a number of cores from 0.001 to 4096, e.g. `cpu = 0.5` or `cpu = 2`";
        assert_eq!(err(quote!(cpu = 0.0009)), rule);
        assert_eq!(err(quote!(cpu = 0)), rule);
        assert_eq!(err(quote!(cpu = 0.0)), rule);
        assert_eq!(err(quote!(cpu = -1)), rule);
        assert_eq!(err(quote!(cpu = 4097)), rule);
        assert_eq!(err(quote!(cpu = "NaN")), rule);
        assert_eq!(err(quote!(cpu = "inf")), rule);
        assert_eq!(err(quote!(cpu = "half")), format!("`cpu = \"half\"` is not a number; {rule}"));
        assert_eq!(err(quote!(cpu = 0.5ms)), format!("{rule}; remove the suffix `ms`"));
    }

    #[test]
    fn timeout() {
        assert_eq!(ok(quote!(timeout = "500ms")).timeout_ms, Some(500));
        assert_eq!(ok(quote!(timeout = "2m")).timeout_ms, Some(120_000));
        assert_eq!(ok(quote!(timeout = "1h")).timeout_ms, Some(3_600_000));
        assert_eq!(
            err(quote!(timeout = "3")),
            "invalid duration '3': the unit is missing; write a whole number with a unit \
             ms, s, m or h, e.g. 500ms, 3s or 2m"
        );
        assert!(err(quote!(timeout = "3d")).starts_with("invalid duration '3d': unknown unit;"));
        assert_eq!(
            err(quote!(timeout = 5)),
            "`timeout` takes a string: a duration with a unit, e.g. `timeout = \"5s\"`"
        );
    }

    #[test]
    fn hostname() {
        assert_eq!(ok(quote!(hostname = "a")).hostname.as_deref(), Some("a"));
        let longest = "h".repeat(64);
        assert_eq!(ok(quote!(hostname = #longest)).hostname, Some(longest));
        let rule =
            "a hostname is 1 to 64 characters of A-Z, a-z, 0-9, `.` and `-`, e.g. `hostname = \"box\"`";
        assert_eq!(err(quote!(hostname = "")), format!("invalid hostname \"\": it is empty; {rule}"));
        let long = "h".repeat(65);
        assert_eq!(
            err(quote!(hostname = #long)),
            format!("invalid hostname \"{long}\": it is 65 characters long; {rule}")
        );
        assert_eq!(
            err(quote!(hostname = "my box")),
            format!("invalid hostname \"my box\": it contains ' '; {rule}")
        );
        assert_eq!(
            err(quote!(hostname = "a_b")),
            format!("invalid hostname \"a_b\": it contains '_'; {rule}")
        );
        assert_eq!(
            err(quote!(hostname = my_box)),
            "`hostname` takes a string: a host name, e.g. `hostname = \"box\"`"
        );
    }

    #[test]
    fn tmpfs() {
        let mount = |path: &str, size_bytes| Tmpfs { path: path.into(), size_bytes };
        assert_eq!(ok(quote!(tmpfs = "/scratch")).tmpfs, [mount("/scratch", None)]);
        assert_eq!(ok(quote!(tmpfs = "/scratch:64M")).tmpfs, [mount("/scratch", Some(64 << 20))]);
        assert_eq!(ok(quote!(tmpfs = ["/a", "/b:1K"])).tmpfs, [mount("/a", None), mount("/b", Some(1024))]);
        assert_eq!(ok(quote!(tmpfs = [])).tmpfs, []);
        assert_eq!(ok(quote!(tmpfs = "/tmp/")).tmpfs, [mount("/tmp", None)]);
        assert_eq!(ok(quote!(tmpfs = "//a/./b//:1K")).tmpfs, [mount("/a/b", Some(1024))]);
        assert!(err(quote!(tmpfs = "/a:1M:2M")).starts_with("invalid size '1M:2M': unknown unit;"));
        assert_eq!(
            err(quote!(tmpfs = "scratch")),
            "tmpfs path \"scratch\" is not absolute; write e.g. `tmpfs = \"/scratch\"`"
        );
        assert_eq!(
            err(quote!(tmpfs = "/a/../etc")),
            "tmpfs path \"/a/../etc\" contains `..`; write the path without it"
        );
        assert_eq!(
            err(quote!(tmpfs = "/")),
            "a tmpfs over `/` would hide the whole file system; mount it on a directory, e.g. \"/scratch\""
        );
        assert!(err(quote!(tmpfs = "/a:1Q")).starts_with("invalid size '1Q': unknown unit;"));
        assert!(err(quote!(tmpfs = "/a:")).starts_with("invalid size '': it is empty;"));
        let rule = "`tmpfs` takes \"PATH\" or \"PATH:SIZE\", or a list of them, \
                    e.g. `tmpfs = \"/scratch:64M\"` or `tmpfs = [\"/a\", \"/b:1M\"]`";
        assert_eq!(err(quote!(tmpfs = 64)), rule);
        // Every bad element is reported.
        assert_eq!(
            errs(quote!(tmpfs = ["a", "/ok", 1])),
            ["tmpfs path \"a\" is not absolute; write e.g. `tmpfs = \"/scratch\"`", rule]
        );
    }

    #[test]
    fn require() {
        assert!(ok(quote!(require = "cgroup")).require_cgroup);
        assert!(!ok(quote!()).require_cgroup);
        assert!(err(quote!(require = "rlimit")).starts_with("unknown requirement \"rlimit\"; the only one is \"cgroup\""));
    }

    #[test]
    fn net() {
        assert_eq!(ok(quote!(net = "none")).net, Net::None);
        assert_eq!(ok(quote!(net = "host")).net, Net::Host);
        assert_eq!(
            err(quote!(net = "wifi")),
            "unknown network mode \"wifi\"; valid values are \"none\" (only loopback) and \"host\""
        );
        assert_eq!(
            err(quote!(net = none)),
            "`net` takes a string: \"none\" or \"host\", e.g. `net = \"none\"`"
        );
    }

    #[test]
    fn expect() {
        assert_eq!(ok(quote!(mem = "10M", expect = "oom")).expect, Expect::Oom);
        assert_eq!(ok(quote!(expect = "pids_limit", pids = 5)).expect, Expect::PidsLimit);
        assert_eq!(ok(quote!(timeout = "1s", expect = "timeout")).expect, Expect::Timeout);
        assert_eq!(
            err(quote!(expect = "boom")),
            "unknown expectation \"boom\"; valid values are \"oom\", \"pids_limit\" and \"timeout\" \
             (leave `expect` out for a test that must succeed)"
        );
        assert_eq!(
            err(quote!(expect = oom)),
            "`expect` takes a string: \"oom\", \"pids_limit\" or \"timeout\", e.g. `expect = \"oom\"`"
        );
    }

    #[test]
    fn expect_needs_its_limit() {
        assert_eq!(
            err(quote!(expect = "oom")),
            "`expect = \"oom\"` needs a memory limit to exceed: add `mem`, e.g. \
             `#[isolated(mem = \"64M\", expect = \"oom\")]`"
        );
        assert_eq!(
            err(quote!(mem = "1G", expect = "pids_limit")),
            "`expect = \"pids_limit\"` needs a pids limit to hit: add `pids`, e.g. \
             `#[isolated(pids = 16, expect = \"pids_limit\")]`"
        );
        assert_eq!(
            err(quote!(pids = 3, expect = "timeout")),
            "`expect = \"timeout\"` needs a timeout to fire: add `timeout`, e.g. \
             `#[isolated(timeout = \"1s\", expect = \"timeout\")]`"
        );
        // A limit that was given but rejected counts as given: only its own error is shown.
        assert_eq!(errs(quote!(mem = "100Q", expect = "oom")).len(), 1);
    }

    #[test]
    fn unknown_and_duplicate_keys() {
        let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, expect, require, crate";
        assert_eq!(err(quote!(foo = 1)), format!("unknown argument `foo`; {valid}"));
        assert_eq!(
            err(quote!(memory = "1M")),
            format!("unknown argument `memory`; {valid} (did you mean `mem`?)")
        );
        assert_eq!(err(quote!(a::pids = 1)), format!("unknown argument `a::pids`; {valid}"));
        assert_eq!(err(quote!(pids = 1, pids = 2)), "duplicate argument `pids`; give each argument once");
        assert_eq!(
            errs(quote!(pids = 0, pids = 2)),
            [err(quote!(pids = 0)), "duplicate argument `pids`; give each argument once".into()],
        );
    }

    #[test]
    fn malformed_arguments() {
        assert_eq!(err(quote!(pids)), "`pids` needs a value, e.g. `pids = 20`");
        assert_eq!(err(quote!(mem("1M"))), "write `mem` as `key = value`, e.g. `mem = \"100M\"`");
        assert_eq!(
            err(quote!(tmpfs["/a"])),
            "write `tmpfs` as `key = value`, e.g. `tmpfs = \"/scratch:64M\"`"
        );
        assert_eq!(err(quote!(pids = 1 mem = "1M")), "expected `,`");
        assert_eq!(err(quote!(pids = )), "unexpected end of input, expected an expression");
        assert!(parse(quote!("pids")).is_err());
        let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, expect, require, crate";
        assert_eq!(err(quote!(type = 1)), format!("unknown argument `type`; {valid}"));
    }

    #[test]
    fn all_errors_are_reported() {
        assert_eq!(
            errs(quote!(foo = 1, pids = 0, net = "wifi")),
            [
                "unknown argument `foo`; valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, expect, require, crate",
                "`pids` must be a whole number of at least 1, e.g. `pids = 20`: with `pids = 0` not even the test \
                 process could start",
                "unknown network mode \"wifi\"; valid values are \"none\" (only loopback) and \"host\"",
            ]
        );
    }
}

/// Property-based fuzzing of [`parse`] (RELIABILITY.md, "Bad input"), with token streams lexed from
/// generated text and built token by token (which also gives the invisible groups `macro_rules!`
/// wraps around `$x:expr`, that no text lexes to).
///
/// The number of cases comes from `PROPTEST_CASES` (proptest's default, 256, in a plain
/// `cargo test`); a long run is e.g. `PROPTEST_CASES=200000 cargo test -p test-sandbox-macros --lib
/// args::fuzz --release`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proc_macro2::{Group, Ident, Literal, Punct, Spacing, TokenTree};
    use proptest::prelude::*;
    use proptest::test_runner::Config as ProptestConfig;
    use quote::quote;
    use std::str::FromStr;

    /// Proptest's defaults (and `PROPTEST_CASES`), without writing `proptest-regressions` files
    /// into the source tree: a failure found here becomes a plain `#[test]` below instead.
    fn config() -> ProptestConfig {
        ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
    }

    const KEYS: [&str; 9] = ["pids", "mem", "cpu", "timeout", "hostname", "tmpfs", "net", "expect", "require"];

    /// Identifiers: the keys, near misses, the guessed aliases, keywords, junk.
    fn ident_text() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            3 => prop::sample::select(KEYS.to_vec()),
            1 => prop::sample::select(vec![
                "Pids", "PIDS", "pids_", "pid", "memory", "cores", "time", "host", "tmp", "network", "expected",
                "foo", "x", "_", "type", "self", "Self", "crate", "super", "fn", "true", "false", "none", "host_name",
                "oom", "N", "r#pids", "r#type", "ü", "日本",
            ]),
        ]
    }

    /// Text of a string's content: what each key accepts, near misses, and anything at all.
    fn string_content() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => prop::sample::select(vec![
                "100M", "1G", "4096", "0", "100Q", "-5M", "1.5G", "99999999999999999999G", "16777216T", "5s",
                "500ms", "2m", "1h", "3", "3d", "0s", "box", "box-1.local", "my box", "a_b", "", "none", "host",
                "oom", "pids_limit", "timeout", "cgroup", "rlimit", "/scratch", "/scratch:64M", "/", "//", "/a/../b",
                "rel", "/a:", ":", "/a:1M:2M", "/a\0b", "0.5", "NaN", "inf", "1e400", "20", " 20 ", "-0", ":::",
                "/tmp/", "//a/./b//:1K",
            ])
            .prop_map(String::from),
            1 => "\\PC{0,12}",
            1 => any::<String>(),
            1 => "[a-z0-9.-]{60,70}",
        ]
    }

    /// Text of one value: literals of every kind, expressions, arrays, junk.
    fn value_text() -> impl Strategy<Value = String> {
        let literal = prop_oneof![
            string_content().prop_map(|text| Literal::string(&text).to_string()),
            prop::sample::select(vec![
                "0",
                "1",
                "20",
                "-1",
                "4194304",
                "4194305",
                "99999999999999999999",
                "340282366920938463463374607431768211456",
                "0x10",
                "0b101",
                "0o17",
                "1_000",
                "20u64",
                "20usize",
                "300u8",
                "5ms",
                "20i8",
                "20f32",
                "0.5",
                "2.5",
                "-0.5",
                "1e400",
                "1e3",
                "1.5f64",
                "0.5f32",
                "0.5ms",
                "4096.0",
                "4096.5",
                "0.0009",
                "0.001",
                "1e-3",
                "1.",
                "r\"/a\"",
                "r#\"/b:1M\"#",
                "b\"1M\"",
                "c\"1M\"",
                "'a'",
                "b'a'",
                "true",
                "false",
                "'\\0'",
            ])
            .prop_map(String::from),
            (any::<u64>(), prop::sample::select(vec!["", "u64", "i32", "f64", "x", "_u8"]))
                .prop_map(|(n, s)| format!("{n}{s}")),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:?}")),
        ];
        let leaf = prop_oneof![
            4 => literal,
            1 => ident_text().prop_map(String::from),
            1 => prop::sample::select(vec!["a::b", "f(1)", "m!(1)", "1..2", "&1", "|x| x", "1 + 2", "{ 1 }", "()", "_"])
                .prop_map(String::from),
        ];
        leaf.prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
                inner.clone().prop_map(|item| format!("({item})")),
                inner.clone().prop_map(|item| format!("-{item}")),
                inner.clone().prop_map(|item| format!("!{item}")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("({a}, {b})")),
            ]
        })
    }

    /// Text of one argument, mostly `key = value`, sometimes malformed.
    fn arg_text() -> impl Strategy<Value = String> {
        let separator = prop::sample::select(vec!["==", ":", "=>", "", "+=", "= =", "::"]);
        prop_oneof![
            30 => (ident_text(), value_text()).prop_map(|(key, value)| format!("{key} = {value}")),
            2 => (ident_text(), separator, value_text()).prop_map(|(key, sep, value)| format!("{key} {sep} {value}")),
            1 => ident_text().prop_map(String::from),
            1 => (ident_text(), value_text()).prop_map(|(key, value)| format!("{key}({value})")),
            1 => (ident_text(), value_text()).prop_map(|(key, value)| format!("a::{key} = {value}")),
            1 => value_text(),
        ]
    }

    /// Text of a whole argument list.
    fn list_text() -> impl Strategy<Value = String> {
        let comma = prop_oneof![
            20 => Just(","),
            1 => prop::sample::select(vec![", ", " , ", ",,", ";", ""]),
        ];
        let tail =
            prop_oneof![9 => prop::sample::select(vec!["", ","]), 1 => prop::sample::select(vec![",,", "#", "$"])];
        (prop::collection::vec((comma, arg_text()), 0..6), tail).prop_map(|(args, tail)| {
            let mut text = String::new();
            for (i, (comma, arg)) in args.into_iter().enumerate() {
                if i > 0 {
                    text.push_str(comma);
                }
                text.push_str(&arg);
            }
            text.push_str(tail);
            text
        })
    }

    /// Token streams built token by token, in every delimiter including the invisible one: random
    /// trees, and `key = tree, ...` lists of them, some wrapped in invisible groups.
    fn token_stream() -> impl Strategy<Value = TokenStream> {
        let tree = token_tree();
        let arg = (ident_text(), tree.clone(), any::<bool>(), any::<bool>()).prop_map(|(key, value, comma, wrap)| {
            let key = ident(key);
            let value = if wrap { TokenTree::Group(Group::new(Delimiter::None, value.into())) } else { value };
            if comma {
                quote!(#key = #value,)
            } else {
                quote!(#key = #value)
            }
        });
        prop_oneof![
            1 => prop::collection::vec(tree, 0..10).prop_map(|trees| trees.into_iter().collect()),
            3 => prop::collection::vec(arg, 0..6).prop_map(|args| args.into_iter().collect()),
        ]
    }

    fn ident(name: &str) -> Ident {
        match name.strip_prefix("r#") {
            Some(raw) => Ident::new_raw(raw, Span::call_site()),
            None => Ident::new(name, Span::call_site()),
        }
    }

    /// One token tree: an identifier, a punctuation mark, a literal of any kind, or a group.
    fn token_tree() -> BoxedStrategy<TokenTree> {
        let punct_chars = vec![
            '=', '<', '>', '!', '~', '+', '-', '*', '/', '%', '^', '&', '|', '@', '.', ',', ';', ':', '#', '$', '?',
            '\'',
        ];
        let leaf = prop_oneof![
            3 => ident_text().prop_map(|name| TokenTree::Ident(ident(name))),
            3 => (prop::sample::select(punct_chars), any::<bool>()).prop_map(|(c, joint)| {
                TokenTree::Punct(Punct::new(c, if joint { Spacing::Joint } else { Spacing::Alone }))
            }),
            3 => prop_oneof![
                any::<u64>().prop_map(Literal::u64_unsuffixed),
                any::<i64>().prop_map(Literal::i64_unsuffixed),
                any::<i32>().prop_map(Literal::i32_suffixed),
                any::<u128>().prop_map(Literal::u128_suffixed),
                any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Literal::f64_unsuffixed),
                any::<f32>().prop_filter("finite", |x| x.is_finite()).prop_map(Literal::f32_suffixed),
                string_content().prop_map(|text| Literal::string(&text)),
                any::<Vec<u8>>().prop_map(|bytes| Literal::byte_string(&bytes)),
                any::<char>().prop_map(Literal::character),
            ]
            .prop_map(TokenTree::Literal),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            let delimiter = prop::sample::select(vec![
                Delimiter::None,
                Delimiter::Parenthesis,
                Delimiter::Bracket,
                Delimiter::Brace,
            ]);
            (delimiter, prop::collection::vec(inner, 0..6))
                .prop_map(|(delimiter, trees)| TokenTree::Group(Group::new(delimiter, trees.into_iter().collect())))
        })
        .boxed()
    }

    /// A valid `key = value` for every key, as tokens.
    fn valid_arg() -> impl Strategy<Value = (&'static str, TokenStream)> {
        prop_oneof![
            (1..=MAX_PIDS).prop_map(|n| ("pids", quote!(pids = #n))),
            (1u64..1 << 20, prop::sample::select(vec!["", "K", "M", "G"])).prop_map(|(n, unit)| {
                let text = format!("{n}{unit}");
                ("mem", quote!(mem = #text))
            }),
            (MIN_CPU_CORES..=MAX_CPU_CORES).prop_map(|x| {
                let x = Literal::f64_unsuffixed(x);
                ("cpu", quote!(cpu = #x))
            }),
            (1u64..100_000, prop::sample::select(vec!["ms", "s", "m", "h"])).prop_map(|(n, unit)| {
                let text = format!("{n}{unit}");
                ("timeout", quote!(timeout = #text))
            }),
            "[a-zA-Z0-9.-]{1,64}".prop_map(|name| ("hostname", quote!(hostname = #name))),
            prop::collection::vec("(/[a-z]{1,5}){1,3}(:[1-9][0-9]{0,3}[KM]?)?", 0..3)
                .prop_map(|paths| ("tmpfs", quote!(tmpfs = [#(#paths),*]))),
            prop::sample::select(vec!["none", "host"]).prop_map(|mode| ("net", quote!(net = #mode))),
            Just(("require", quote!(require = "cgroup"))),
        ]
    }

    /// Args as an attribute again: what `parse` must read back unchanged.
    fn render(args: &Args) -> TokenStream {
        let mut parts = Vec::new();
        if let Some(pids) = args.pids {
            let pids = Literal::u64_unsuffixed(pids);
            parts.push(quote!(pids = #pids));
        }
        if let Some(bytes) = args.mem_bytes {
            let text = bytes.to_string();
            parts.push(quote!(mem = #text));
        }
        if let Some(cores) = args.cpu_cores {
            let cores = Literal::f64_unsuffixed(cores);
            parts.push(quote!(cpu = #cores));
        }
        if let Some(millis) = args.timeout_ms {
            let text = format!("{millis}ms");
            parts.push(quote!(timeout = #text));
        }
        if let Some(name) = &args.hostname {
            parts.push(quote!(hostname = #name));
        }
        if !args.tmpfs.is_empty() {
            let specs = args.tmpfs.iter().map(|tmpfs| match tmpfs.size_bytes {
                Some(bytes) => format!("{}:{bytes}", tmpfs.path),
                None => tmpfs.path.clone(),
            });
            parts.push(quote!(tmpfs = [#(#specs),*]));
        }
        if args.net == Net::None {
            parts.push(quote!(net = "none"));
        }
        let expect = match args.expect {
            Expect::Success => None,
            Expect::Oom => Some("oom"),
            Expect::PidsLimit => Some("pids_limit"),
            Expect::Timeout => Some("timeout"),
        };
        if let Some(expect) = expect {
            parts.push(quote!(expect = #expect));
        }
        if args.require_cgroup {
            parts.push(quote!(require = "cgroup"));
        }
        quote!(#(#parts),*)
    }

    /// What every accepted attribute satisfies, whatever was written.
    fn check_accepted(args: &Args, tokens: &TokenStream) -> Result<(), TestCaseError> {
        prop_assert!(args.pids.is_none_or(|pids| (1..=MAX_PIDS).contains(&pids)), "{:?}", args);
        prop_assert!(args.mem_bytes.is_none_or(|bytes| bytes > 0), "{:?}", args);
        prop_assert!(
            args.cpu_cores.is_none_or(|cores| cores.is_finite() && (MIN_CPU_CORES..=MAX_CPU_CORES).contains(&cores)),
            "{:?}",
            args
        );
        prop_assert!(args.timeout_ms.is_none_or(|millis| millis > 0), "{:?}", args);
        if let Some(name) = &args.hostname {
            prop_assert!((1..=MAX_HOSTNAME_LEN).contains(&name.len()), "{:?}", args);
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'), "{:?}", args);
        }
        for tmpfs in &args.tmpfs {
            let path = &tmpfs.path;
            prop_assert!(path.starts_with('/') && path.len() > 1 && !path.ends_with('/'), "{:?}", tmpfs);
            prop_assert!(!path.contains(['\0', ':']) && !path.contains("//"), "{:?}", tmpfs);
            prop_assert!(path.split('/').skip(1).all(|part| part != "." && part != ".."), "{:?}", tmpfs);
            prop_assert!(tmpfs.size_bytes.is_none_or(|bytes| bytes > 0), "{:?}", tmpfs);
        }
        match args.expect {
            Expect::Success => {}
            Expect::Oom => prop_assert!(args.mem_bytes.is_some(), "{:?}", args),
            Expect::PidsLimit => prop_assert!(args.pids.is_some(), "{:?}", args),
            Expect::Timeout => prop_assert!(args.timeout_ms.is_some(), "{:?}", args),
        }
        // Written back out, it reads the same.
        let again = render(args);
        let reread = parse(again.clone()).ok();
        prop_assert_eq!(reread.as_ref(), Some(args), "`{}` → `{}`", tokens, again);
        Ok(())
    }

    /// What every rejection satisfies. A syntax error (the list does not even split into
    /// `key = expression` arguments) is syn's single message, spanned at the offending token, which
    /// the compiler shows: "expected `,`", "expected an expression", also the rarer "number too
    /// large to fit in target type" of `pids = S { 4294967296 }`; unless it is one of ours (a name
    /// or a `=` missing), only its being a compile error is checked. Every other message is
    /// `#[isolated]`'s own: it names the argument or the value and says what to write instead.
    fn check_rejected(err: &syn::Error, tokens: &TokenStream) -> Result<(), TestCaseError> {
        let fixes = [
            "e.g.",
            "valid arguments are",
            "valid values are",
            "the only one is",
            "give each argument once",
            "remove it",
            "write the path without it",
            "write it without quotes",
        ];
        let messages: Vec<String> = err.clone().into_iter().map(|err| err.to_string()).collect();
        let syntax = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens.clone()).is_err();
        if syntax {
            prop_assert_eq!(messages.len(), 1, "`{}`", tokens);
        }
        for message in messages {
            prop_assert!(!message.is_empty(), "empty message for `{}`", tokens);
            let ours =
                !syntax || message.starts_with("expected an argument name") || message.starts_with("expected `=`");
            if ours {
                prop_assert!(fixes.iter().any(|fix| message.contains(fix)), "`{}`: no fix in {:?}", tokens, message);
                prop_assert!(message.contains(['`', '\'', '"']), "`{}`: names nothing: {:?}", tokens, message);
            }
        }
        Ok(())
    }

    fn check(tokens: TokenStream) -> Result<(), TestCaseError> {
        match parse(tokens.clone()) {
            Ok(args) => check_accepted(&args, &tokens),
            Err(err) => check_rejected(&err, &tokens),
        }
    }

    /// The single value `key = value` gives, or the error.
    fn one(tokens: TokenStream) -> Result<Args, String> {
        parse(tokens).map_err(|err| err.to_string())
    }

    proptest! {
        #![proptest_config(config())]

        /// Generated text, lexed: no panic; accepted attributes are consistent and read back the
        /// same; every error names its cause and the fix.
        #[test]
        fn text_attributes(text in list_text()) {
            if let Ok(tokens) = TokenStream::from_str(&text) {
                check(tokens)?;
            }
        }

        /// Token streams built directly, invisible groups included: the same.
        #[test]
        fn token_attributes(tokens in token_stream()) {
            check(tokens)?;
        }

        /// Valid arguments in any order, with a trailing comma or not, mean the same; wrapping every
        /// value in an invisible group (as `macro_rules!` does) changes nothing.
        #[test]
        fn valid_arguments_in_any_order(
            args in prop::collection::vec(valid_arg(), 0..8),
            seed in any::<u64>(),
            trailing in any::<bool>(),
        ) {
            let mut unique: Vec<(&str, TokenStream)> = Vec::new();
            for (key, tokens) in args {
                if !unique.iter().any(|(seen, _)| *seen == key) {
                    unique.push((key, tokens));
                }
            }
            let list = |items: &[(&str, TokenStream)]| {
                let items = items.iter().map(|(_, tokens)| tokens);
                if trailing { quote!(#(#items,)*) } else { quote!(#(#items),*) }
            };
            let expected =
                parse(list(&unique)).map_err(|err| TestCaseError::fail(format!("{}: {err}", list(&unique))))?;
            check_accepted(&expected, &list(&unique))?;
            let mut shuffled = unique.clone();
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(parse(list(&shuffled)).ok(), Some(expected.clone()));
            let wrapped: Vec<(&str, TokenStream)> = unique
                .iter()
                .map(|(key, tokens)| {
                    let mut trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
                    let value: TokenStream = trees.split_off(2).into_iter().collect();
                    trees.push(TokenTree::Group(Group::new(Delimiter::None, value)));
                    (*key, trees.into_iter().collect())
                })
                .collect();
            prop_assert_eq!(parse(list(&wrapped)).ok(), Some(expected));
        }

        /// A key given twice is an error naming it, whatever the values.
        #[test]
        fn duplicated_keys(
            args in prop::collection::vec(valid_arg(), 1..6),
            again in any::<prop::sample::Index>(),
            value in value_text(),
        ) {
            let (key, _) = args[again.index(args.len())];
            // A syntax error stops parsing before any key is looked at.
            let Ok(value) = TokenStream::from_str(&value) else { return Ok(()) };
            if syn::parse2::<Expr>(value.clone()).is_err() {
                return Ok(());
            }
            let ident = Ident::new(key, Span::call_site());
            let items = args.iter().map(|(_, tokens)| tokens);
            let tokens = quote!(#(#items,)* #ident = #value);
            let err = parse(tokens.clone()).expect_err("a duplicate was accepted");
            let messages: Vec<String> = err.into_iter().map(|err| err.to_string()).collect();
            let duplicate = format!("duplicate argument `{key}`; give each argument once");
            prop_assert!(messages.contains(&duplicate), "`{}`: {:?}", tokens, messages);
        }

        /// One bad argument is one error, however many there are: all are reported together.
        #[test]
        fn every_bad_argument_is_reported(bad in prop::sample::subsequence(vec![
            quote!(pids = 0), quote!(mem = "1Q"), quote!(cpu = 0), quote!(timeout = "3"), quote!(hostname = "a b"),
            quote!(tmpfs = "rel"), quote!(net = "wifi"), quote!(expect = "boom"), quote!(require = "x"),
        ], 1..=9), good in prop::collection::vec(valid_arg(), 0..3)) {
            // Valid arguments of other keys, each once, mixed in.
            let mut keys: Vec<String> =
                bad.iter().map(|tokens| tokens.to_string().split(' ').next().unwrap().into()).collect();
            let mut mixed = Vec::new();
            for (key, tokens) in good {
                if !keys.iter().any(|seen| seen == key) {
                    keys.push(key.into());
                    mixed.push(tokens);
                }
            }
            let tokens = quote!(#(#bad,)* #(#mixed),*);
            let err = parse(tokens.clone()).expect_err("bad arguments were accepted");
            prop_assert_eq!(err.into_iter().count(), bad.len(), "{}", tokens);
        }

        /// `pids`, `cpu`, `mem`, `timeout`, `tmpfs` and `hostname` accept exactly what the CLI's
        /// `--pids`, `--cpu`, `--mem`, `--timeout`, `--tmpfs` and `--hostname` accept, with the
        /// same values, so that a test and a command line mean the same.
        #[test]
        fn agrees_with_the_cli(
            text in string_content(),
            number in prop_oneof![any::<u64>(), 0..10u64, (MAX_PIDS - 2)..=(MAX_PIDS + 2)],
        ) {
            let cli = sandbox::config::parse_pids(&number.to_string()).ok();
            let number_literal = Literal::u64_unsuffixed(number);
            prop_assert_eq!(one(quote!(pids = #number_literal)).ok().and_then(|args| args.pids), cli);
            let cli = sandbox::config::parse_cpu(&text).ok();
            prop_assert_eq!(one(quote!(cpu = #text)).ok().and_then(|args| args.cpu_cores), cli);
            let cli = sandbox::units::parse_size(&text).ok();
            prop_assert_eq!(one(quote!(mem = #text)).ok().and_then(|args| args.mem_bytes), cli);
            let cli = sandbox::units::parse_duration(&text).ok().map(|d| d.as_millis() as u64);
            prop_assert_eq!(one(quote!(timeout = #text)).ok().and_then(|args| args.timeout_ms), cli);
            let cli = sandbox::config::parse_tmpfs(&text)
                .ok()
                .map(|mount| Tmpfs { path: mount.path.to_string_lossy().into_owned(), size_bytes: mount.size_bytes });
            prop_assert_eq!(one(quote!(tmpfs = #text)).ok().map(|args| args.tmpfs), cli.map(|mount| vec![mount]));
            let config = sandbox::Config { hostname: text.clone(), ..sandbox::Config::default() };
            let cli = config.validate().ok().map(|()| text.clone());
            prop_assert_eq!(one(quote!(hostname = #text)).ok().and_then(|args| args.hostname), cli);
        }
    }

    /// What fuzzing found, kept as plain tests.
    #[test]
    fn found_by_fuzzing() {
        // A NUL byte in a tmpfs path compiled, and panicked at run time in the mount plan.
        assert_eq!(
            one(quote!(tmpfs = "/a\0b")).unwrap_err(),
            "tmpfs path \"/a\\0b\" contains a NUL byte, which no path can; remove it"
        );
        // A pids limit the kernel refuses compiled, and ran under the rlimit fallback.
        assert_eq!(one(quote!(pids = 4194304)).unwrap().pids, Some(4_194_304));
        assert!(one(quote!(pids = 4194305))
            .unwrap_err()
            .starts_with("`pids = 4194305` is too large: the kernel allows at most 4194304 processes in a cgroup; "));
        // syn's bare "expected identifier" / "expected `,`" did not say what to write.
        let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, expect, require, crate";
        assert_eq!(
            one(quote!("pids" = 1)).unwrap_err(),
            format!("expected an argument name, e.g. `pids = 20`; {valid} (write `pids` without quotes)")
        );
        assert_eq!(one(quote!(= 1)).unwrap_err(), format!("expected an argument name, e.g. `pids = 20`; {valid}"));
        assert_eq!(
            one(quote!(pids = 1,, mem = "1M")).unwrap_err(),
            format!("expected an argument name, e.g. `pids = 20`; {valid}")
        );
        assert_eq!(
            one(quote!(mem: "1M")).unwrap_err(),
            "expected `=` after `mem`: write arguments as `key = value`, e.g. `mem = \"100M\"`"
        );
        assert_eq!(
            one(quote!(pids 20)).unwrap_err(),
            "expected `=` after `pids`: write arguments as `key = value`, e.g. `pids = 20`"
        );
        // `«pids» «()»`, as a macro_rules! macro passes them on: "expected group token".
        let invisible = |tokens: TokenStream| TokenTree::Group(Group::new(Delimiter::None, tokens));
        let tokens: TokenStream = [invisible(quote!(pids)), invisible(quote!(()))].into_iter().collect();
        assert_eq!(one(tokens).unwrap_err(), "write `pids` as `key = value`, e.g. `pids = 20`");
    }
}
