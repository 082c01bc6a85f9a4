//! The arguments of `#[isolated(...)]`: parsed, checked and converted at compile time.
//!
//! [`parse`] reads `key = value` pairs into a [`Builder`], which has one setter per key and
//! remembers which keys it saw; [`Builder::build`] then checks the keys against each other.
//! Every problem is a [`syn::Error`] spanned at the offending token whose message says how to fix
//! it; all problems of one attribute are reported together.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{token, Expr, ExprLit, Lit, LitStr, Token, UnOp};

// The same parser the CLI uses, so that sizes and durations mean the same and are rejected with
// the same messages.
#[path = "../../sandbox/src/units.rs"]
#[allow(dead_code, missing_docs)]
mod units;

/// The smallest `cpu` value the runtime accepts (the CLI's `--cpu` bounds).
const MIN_CPU_CORES: f64 = 0.001;

/// The largest `cpu` value: more cores than any machine this runs on.
const MAX_CPU_CORES: f64 = 4096.0;

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
}

impl Key {
    /// Every key, in the order the error messages list them.
    const ALL: [Key; 9] =
        [Key::Pids, Key::Mem, Key::Cpu, Key::Timeout, Key::Hostname, Key::Tmpfs, Key::Net, Key::Expect, Key::Require];

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
        // A keyword (`type = 1`) is reported as an unknown argument, not as a syntax error.
        let key = if input.peek(syn::Ident::peek_any) && !input.peek2(Token![::]) {
            syn::Path::from(input.call(syn::Ident::parse_any)?)
        } else {
            input.call(syn::Path::parse_mod_style)?
        };
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            ArgValue::Expr(input.parse()?)
        } else if input.peek(token::Paren) || input.peek(token::Bracket) || input.peek(token::Brace) {
            ArgValue::Group(input.parse()?)
        } else {
            ArgValue::Missing
        };
        Ok(Arg { key, value })
    }
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
                int.base10_parse::<u64>().map_err(|_| {
                    syn::Error::new_spanned(
                        value,
                        format!("`pids = {}` is too large; {RULE}", int.base10_digits()),
                    )
                })?
            }
            Some(Lit::Float(_)) => {
                return Err(syn::Error::new_spanned(value, format!("{RULE}, not a fraction")))
            }
            Some(Lit::Str(text)) => {
                let hint = match text.value().trim().parse::<u64>() {
                    Ok(number) if number > 0 => format!("write it without quotes: `pids = {number}`"),
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
                float.base10_parse::<f64>().map_err(|err| syn::Error::new_spanned(value, err))?
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
        let millis = u64::try_from(duration.as_millis())
            .map_err(|_| syn::Error::new_spanned(value, "this timeout is too large"))?;
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
        let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, expect, require";
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
        let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, expect, require";
        assert_eq!(err(quote!(type = 1)), format!("unknown argument `type`; {valid}"));
    }

    #[test]
    fn all_errors_are_reported() {
        assert_eq!(
            errs(quote!(foo = 1, pids = 0, net = "wifi")),
            [
                "unknown argument `foo`; valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, expect, require",
                "`pids` must be a whole number of at least 1, e.g. `pids = 20`: with `pids = 0` not even the test \
                 process could start",
                "unknown network mode \"wifi\"; valid values are \"none\" (only loopback) and \"host\"",
            ]
        );
    }
}
