//! What runs in a sandbox: a program with its arguments, environment and descriptors, or (for
//! the test runtime) a function.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::init::{FunctionBody, FunctionCall};
use crate::sys::{self};

use super::Error;

/// A program with arguments to run in a sandbox; like [`std::process::Command`], whose spawning
/// cannot put a process into new namespaces and a cgroup at the same time.
///
/// ```
/// use sandbox::{Command, Config, Sandbox};
///
/// let mut config = Config::default();
/// config.hostname = "box".into();
/// let output = tempfile::NamedTempFile::new()?;
/// let mut command = Command::new("sh");
/// command.args(["-c", "echo $GREETING from $(uname -n), pid $$"]).env("GREETING", "hello");
/// command.stdout(output.reopen()?);
/// let outcome = Sandbox::new(config)?.run(&command)?;
/// assert!(outcome.success(), "{outcome}");
/// // The shell is the first process after the sandbox's init (PID 1).
/// assert_eq!(std::fs::read_to_string(output.path())?, "hello from box, pid 2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Command {
    pub(super) program: OsString,
    /// Execute this open file instead of looking `program` up (which then is only `argv[0]`).
    pub(super) executable: Option<OwnedFd>,
    pub(super) args: Vec<OsString>,
    pub(super) env: Vec<(OsString, Option<OsString>)>,
    pub(super) cwd: Option<PathBuf>,
    pub(super) stdio: [Option<OwnedFd>; 3],
    pub(super) kept_fds: Vec<OwnedFd>,
    pub(super) take_terminal: bool,
    /// Make this call instead of exec'ing a program.
    pub(super) function: Option<FunctionCall>,
}

impl Command {
    /// Runs `program`, looked up in `PATH` (inside the sandbox's root) when it has no `/`.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            executable: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdio: [None, None, None],
            kept_fds: Vec::new(),
            take_terminal: false,
            function: None,
        }
    }

    /// A "command" that is a copy of this process calling `run(body, report_fd)` (see
    /// [`report_to`](Command::report_to)): no exec.
    ///
    /// # Safety
    /// A copy of the process that spawns it must be consistent (`sys::copy_is_consistent`): the
    /// sandbox's init forks a full copy of it to run `body`, and a copy of a multi-threaded
    /// process may find a lock held forever by a thread that does not exist there. So it is
    /// single-threaded, or its one other thread is libtest's main thread, blocked waiting for
    /// the test that spawns it (see `testing::run_function_isolated`).
    pub(crate) unsafe fn for_function(run: fn(FunctionBody, Option<RawFd>) -> !, body: FunctionBody) -> Command {
        let mut command = Command::new("isolated test");
        command.function = Some(FunctionCall { run, body, report_fd: None });
        command
    }

    /// Where a function command reports how its body ended.
    pub(crate) fn report_to(&mut self, fd: RawFd) -> &mut Command {
        if let Some(call) = &mut self.function {
            call.report_fd = Some(fd);
        }
        self
    }

    /// When stdin is the terminal's foreground, hands the terminal to the command (its own
    /// process group), as a shell does for a job: an interactive `sh` then has job control and
    /// ^C reaches only the sandbox. The launcher takes it back with
    /// [`Running::restore_terminal`](super::Running::restore_terminal). Off by default (a test
    /// harness keeps its terminal): then the command runs in a session of the sandbox's own, led
    /// by its init, without a controlling terminal, and leads its own process group.
    pub fn foreground_terminal(&mut self, take: bool) -> &mut Command {
        self.take_terminal = take && sys::is_foreground_terminal(0);
        self
    }

    /// Whether the command will take the terminal (see [`Command::foreground_terminal`]): then
    /// the launcher must take it back when the command has ended.
    pub fn takes_terminal(&self) -> bool {
        self.take_terminal
    }

    /// Runs the program open as `executable` (e.g. `O_PATH`), with `argv0` as `argv[0]`: works
    /// even where the sandbox hides the program's path (a test binary below `/tmp`).
    pub fn from_executable(executable: OwnedFd, argv0: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(argv0);
        command.executable = Some(executable);
        command
    }

    /// Keeps `fd` open in the command, at the same number (returned), e.g. to pass a pipe to
    /// report through.
    pub fn keep_fd(&mut self, fd: OwnedFd) -> RawFd {
        let number = fd.as_raw_fd();
        self.kept_fds.push(fd);
        number
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Command {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the command (the rest is inherited).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Working directory of the command, as seen inside the sandbox.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Command {
        self.cwd = Some(dir.into());
        self
    }

    /// The command's stdin (default: inherited).
    pub fn stdin(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[0] = Some(fd.into());
        self
    }

    /// The command's stdout (default: inherited).
    pub fn stdout(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[1] = Some(fd.into());
        self
    }

    /// The command's stderr (default: inherited).
    pub fn stderr(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[2] = Some(fd.into());
        self
    }

    /// The value `name` will have in the command's environment.
    pub(super) fn env_var(&self, name: &str) -> Option<OsString> {
        match self.env.iter().rfind(|(key, _)| key == name) {
            Some((_, value)) => value.clone(),
            None => std::env::var_os(name),
        }
    }

    pub(super) fn environment(&self) -> Vec<CString> {
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (key, value) in &self.env {
            vars.retain(|(k, _)| k != key);
            if let Some(value) = value {
                vars.push((key.clone(), value.clone()));
            }
        }
        vars.into_iter()
            .filter_map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                CString::new(entry).ok()
            })
            .collect()
    }
}

pub(super) fn c_string(what: &'static str, text: &OsStr) -> Result<CString, Error> {
    CString::new(text.as_bytes()).map_err(|_| Error::Io {
        action: what,
        source: io::Error::new(io::ErrorKind::InvalidInput, format!("{text:?} contains a NUL byte")),
    })
}

pub(super) fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// A command's program, arguments, environment and working directory as C strings, prepared
/// before the clone: the init may not allocate. `argv` and `envp` point into the strings' own
/// buffers, which stay put when this moves.
pub(super) struct ExecStrings {
    pub(super) program: CString,
    _argv_strings: Vec<CString>,
    pub(super) argv: Vec<*const libc::c_char>,
    _env_strings: Vec<CString>,
    pub(super) envp: Vec<*const libc::c_char>,
    pub(super) cwd: Option<CString>,
}

impl ExecStrings {
    pub(super) fn new(command: &Command, cwd: Option<PathBuf>) -> Result<ExecStrings, Error> {
        let program = c_string("program name", &command.program)?;
        let mut argv_strings = vec![program.clone()];
        for arg in &command.args {
            argv_strings.push(c_string("argument", arg)?);
        }
        let argv = null_terminated(&argv_strings);
        // A test body (function command) is not exec'd: it keeps this process's environment.
        let env_strings = if command.function.is_some() { Vec::new() } else { command.environment() };
        let envp = null_terminated(&env_strings);
        let cwd = cwd.map(|p| c_string("working directory", p.as_os_str())).transpose()?;
        Ok(ExecStrings { program, _argv_strings: argv_strings, argv, _env_strings: env_strings, envp, cwd })
    }
}
