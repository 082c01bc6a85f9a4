//! The sandboxed child's side of an isolated test: run the body, report how it ended.

use std::fs::File;
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::TestBody;

/// Set in the sandboxed child to the name of the test it must run.
pub const CHILD_ENV: &str = "SANDBOX_ISOLATED_TEST";
/// The descriptor number of the pipe the child reports through.
pub(crate) const REPORT_FD_ENV: &str = "SANDBOX_ISOLATED_REPORT_FD";

/// How the body ended, as the child saw it. Absent when the child was killed first. Sent as
/// one JSON line: `{"result":"panicked","message":"boom"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", content = "message", rename_all = "snake_case")]
pub enum ChildReport {
    /// The body returned normally (or `Ok`).
    Passed,
    /// The body panicked with this message.
    Panicked(String),
    /// The body returned `Err`; its `Debug` text.
    #[serde(rename = "error")]
    ReturnedError(String),
}

/// [`ChildReport::Passed`], encoded, with its line end.
const PASSED_LINE: &[u8] = b"{\"result\":\"passed\"}\n";

impl ChildReport {
    fn encode(&self) -> String {
        serde_json::to_string(self).expect("a report serialises")
    }

    /// Parses what the child wrote; `None` when it wrote nothing (it was killed) or garbage.
    pub fn parse(text: &str) -> Option<ChildReport> {
        serde_json::from_str(text.lines().next()?).ok()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

/// Whether `fd` is an open pipe (what the launcher hands a test body for its report).
fn is_pipe(fd: i32) -> bool {
    nix::sys::stat::fstat(fd).is_ok_and(|stat| stat.st_mode & libc::S_IFMT == libc::S_IFIFO)
}

/// Runs the test body, reports how it ended to the parent through `report_fd` (or the
/// descriptor named by [`REPORT_FD_ENV`]), and exits (0 when it passed).
pub(crate) fn run_body_and_exit(body: TestBody, report_fd: Option<i32>) -> ! {
    crate::testing::affinity::release_body();
    let report = match std::panic::catch_unwind(body) {
        Ok(Ok(())) => ChildReport::Passed,
        Ok(Err(error)) => {
            eprintln!("Error: {error}");
            ChildReport::ReturnedError(error)
        }
        Err(payload) => ChildReport::Panicked(panic_message(payload.as_ref())),
    };
    // A number read from the environment is checked to be an open pipe; one handed down by the
    // fork server (`report_fd`) is the pipe it just made, and a test pays no system call for it.
    let fd = report_fd
        .or_else(|| std::env::var(REPORT_FD_ENV).ok().and_then(|v| v.parse::<i32>().ok()).filter(|fd| is_pipe(*fd)))
        .filter(|fd| *fd > 2);
    if let Some(fd) = fd {
        // SAFETY: the launcher kept this pipe open for the report (`Command::keep_fd`) and handed
        // it down in `report_fd` or named it in the environment (then checked to be an open
        // pipe); nothing else of this process, which exits below, uses it.
        let mut pipe = File::from(unsafe { crate::sys::own_fd(fd) });
        // The common case as a constant: this process is a copy, and each page its allocator
        // touches is copied.
        let _ = match report {
            ChildReport::Passed => pipe.write_all(PASSED_LINE),
            _ => writeln!(pipe, "{}", report.encode()),
        };
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let code = if report == ChildReport::Passed { 0 } else { 101 };
    // A coverage runtime (LLVM_PROFILE_FILE, set by cargo-llvm-cov and grcov set-ups) writes
    // its counters from an exit handler: then exit as usual. Otherwise leave at once: this
    // process is a copy, and running the exit handlers touches (and so copies) pages of memory
    // that were shared with its parent, a fifth of what a trivial test costs.
    if std::env::var_os("LLVM_PROFILE_FILE").is_some() {
        std::process::exit(code)
    }
    crate::sys::flush_c_stdio();
    crate::sys::exit_immediately(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for report in [
            ChildReport::Passed,
            ChildReport::Panicked("boom \"quoted\"\nline".into()),
            ChildReport::ReturnedError("Custom { kind: Other }".into()),
        ] {
            assert_eq!(ChildReport::parse(&report.encode()), Some(report));
        }
        assert_eq!(format!("{}\n", ChildReport::Passed.encode()).as_bytes(), PASSED_LINE);
        assert_eq!(ChildReport::parse(""), None);
        assert_eq!(ChildReport::parse("{\"result\":\"odd\"}"), None);
    }
}
