//! The command line: `sandbox run` and `sandbox check`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

use sandbox::check::{fs_finding, run_checks, Status};
use sandbox::config::{parse_bind, parse_cpu, parse_pids, parse_tmpfs};
use sandbox::units::{parse_duration, parse_size};
use sandbox::{BindMount, Command, Config, FsMode, Limits, NetMode, Sandbox, TmpfsMount};

/// Run a command in fresh PID/mount/UTS namespaces with its own cgroup, and report what the
/// kernel saw (exit status, OOM kills, pids-limit hits, peak memory and pids, CPU time).
#[derive(Parser)]
#[command(name = "sandbox", version)]
struct Cli {
    #[command(subcommand)]
    command: Subcommands,
}

// Parsed once per process: boxing `RunArgs` would save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Subcommands {
    /// Run CMD in a new sandbox; exits with its status (128+N for signal N, 125 if the sandbox
    /// could not be set up, 126/127 if CMD could not be executed).
    Run(RunArgs),
    /// Show what this machine supports; exits non-zero with the fix when `run` cannot work.
    Check {
        /// Check this cgroup (path below the cgroup mount) instead of the default place
        /// (default: SANDBOX_CGROUP_PARENT, as for runs).
        #[arg(long, value_name = "PATH")]
        cgroup_parent: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Net {
    /// A new network namespace with only `lo`, up.
    None,
    /// The host's network.
    Host,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fs {
    /// The host's file systems as they are.
    Host,
    /// Every host mount read-only but /proc, /sys, /dev, the tmpfs mounts, read-write binds and
    /// the --writable paths.
    Ro,
    /// Host mounts seen through a copy-on-write layer: the host is left unchanged and the run
    /// lists what the command changed.
    Overlay,
}

/// `--host-writes`: what the command's changes to the host's files mean under --fs overlay.
#[derive(Clone, Copy, ValueEnum)]
enum HostWrites {
    /// Thrown away with the layer, and listed.
    Discard,
    /// Thrown away, listed, and the run fails: catches commands that write outside their own
    /// directories.
    Fail,
}

#[derive(Clone, Copy, ValueEnum)]
enum Require {
    /// Every limit enforced exactly by the run's cgroup.
    Cgroup,
}

#[derive(Parser)]
struct RunArgs {
    /// Maximum number of processes and threads (pids.max).
    #[arg(long, value_name = "N", value_parser = parse_pids, allow_negative_numbers = true)]
    pids: Option<u64>,
    /// Memory limit without swap, e.g. 100M or 1G (binary units).
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| parse_size(s).map_err(|e| e.to_string()))]
    mem: Option<u64>,
    /// CPU bandwidth in cores, e.g. 0.3 = 30 ms per 100 ms.
    #[arg(long, value_name = "CORES", value_parser = |s: &str| parse_cpu(s).map_err(|e| e.to_string()))]
    cpu: Option<f64>,
    /// Kill everything in the sandbox after this long, e.g. 500ms, 3s, 2m.
    #[arg(long, value_name = "DUR", value_parser = |s: &str| parse_duration(s).map_err(|e| e.to_string()))]
    timeout: Option<Duration>,
    /// Hostname inside the sandbox.
    #[arg(long, value_name = "NAME", default_value = "sandbox")]
    hostname: String,
    /// Mount a tmpfs at PATH (optionally limited to SIZE); repeatable. /tmp always gets one.
    #[arg(long, value_name = "PATH[:SIZE]", value_parser = |s: &str| parse_tmpfs(s).map_err(|e| e.to_string()))]
    tmpfs: Vec<TmpfsMount>,
    /// Bind-mount a host path into the sandbox, read-only with :ro; repeatable.
    #[arg(long, value_name = "SRC:DST[:ro]", value_parser = |s: &str| parse_bind(s).map_err(|e| e.to_string()))]
    bind: Vec<BindMount>,
    /// Use DIR as the root file system (pivot_root).
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Network: `none` (own namespace, only lo) or `host`.
    #[arg(long, value_enum, default_value = "host")]
    net: Net,
    /// The host's file systems: `ro` (read-only: a write fails with EROFS), `overlay`
    /// (copy-on-write: the host unchanged, the changes listed) or `host`; default: SANDBOX_FS,
    /// else host.
    #[arg(long, value_enum, value_name = "MODE")]
    fs: Option<Fs>,
    /// With --fs ro or overlay: a path written straight to the host; repeatable.
    #[arg(long, value_name = "PATH")]
    writable: Vec<PathBuf>,
    /// With --fs overlay: the most the layer holds, e.g. 64M (binary units); a write beyond it
    /// fails with ENOSPC; default: the memory limit bounds it.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| parse_size(s).map_err(|e| e.to_string()))]
    fs_size: Option<u64>,
    /// With --fs overlay: `fail` fails the run if the command changed the host's files
    /// (discarded either way); default: discard.
    #[arg(long, value_enum, value_name = "ACTION")]
    host_writes: Option<HostWrites>,
    /// With --fs overlay: copy the changed files into DIR (made if missing), at their paths
    /// inside the sandbox; deletions are listed in DIR/DELETED.
    #[arg(long, value_name = "DIR")]
    keep_changes: Option<PathBuf>,
    /// A new IPC namespace (System V IPC, POSIX message queues).
    #[arg(long)]
    ipc: bool,
    /// Create the run's cgroup below this cgroup (path below the cgroup mount); default:
    /// SANDBOX_CGROUP_PARENT, else the places README describes.
    #[arg(long, value_name = "PATH")]
    cgroup_parent: Option<PathBuf>,
    /// Fail unless the limits can be enforced by a cgroup (without root and without a delegated
    /// cgroup the sandbox falls back to rlimits otherwise). SANDBOX_REQUIRE=cgroup does the same.
    #[arg(long, value_enum, value_name = "WHAT")]
    require: Option<Require>,
    /// Let the command gain privileges through set-user-ID programs and file capabilities
    /// (by default it runs with no_new_privs set).
    #[arg(long)]
    allow_new_privs: bool,
    /// As root: give the command the host's root. Without it the command runs in a cgroup
    /// namespace of its own and cannot leave its cgroup or raise its limits.
    #[arg(long)]
    privileged: bool,
    /// Write the outcome as JSON to FILE (`-`: stdout, after the command's output).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<std::ffi::OsString>,
}

impl RunArgs {
    fn config(&self) -> Config {
        let mut tmpfs = Config::default().tmpfs;
        for mount in &self.tmpfs {
            tmpfs.retain(|t| t.path != mount.path);
            tmpfs.push(mount.clone());
        }
        Config {
            limits: Limits { pids: self.pids, memory_bytes: self.mem, cpu_cores: self.cpu },
            timeout: self.timeout,
            hostname: self.hostname.clone(),
            tmpfs,
            binds: self.bind.clone(),
            rootfs: self.rootfs.clone(),
            net: match self.net {
                Net::None => NetMode::None,
                Net::Host => NetMode::Host,
            },
            private_ipc: self.ipc,
            cgroup_parent: self.cgroup_parent.clone(),
            require_cgroup: matches!(self.require, Some(Require::Cgroup)),
            allow_new_privileges: self.allow_new_privs,
            fs: match self.fs {
                Some(Fs::Ro) => FsMode::ReadOnly,
                Some(Fs::Overlay) => FsMode::Overlay,
                Some(Fs::Host) | None => FsMode::Host,
            },
            writable: self.writable.clone(),
            fs_size: self.fs_size,
            host_writes: match self.host_writes {
                Some(HostWrites::Fail) => sandbox::HostWrites::Fail,
                Some(HostWrites::Discard) | None => sandbox::HostWrites::Discard,
            },
            keep_changes: self.keep_changes.clone(),
            privileged: self.privileged,
        }
    }
}

/// Memory from a static arena: musl's allocator would hand every freed piece back to the kernel,
/// costly while the sandbox's init shares this process's memory.
#[global_allocator]
static ALLOCATOR: sandbox::LauncherAllocator = sandbox::LauncherAllocator::new();

/// The C entry point.
#[unsafe(no_mangle)] // SAFETY: the one `main` symbol of this program, with C's signature.
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: argc and argv are what the C start-up passes to main.
    let args = unsafe { sandbox::start_without_runtime(argc, argv) };
    // A panic reads as it does under Rust's runtime: its message, then exit status 101.
    let code = std::panic::catch_unwind(|| cli_main(args)).unwrap_or(101);
    let _ = std::io::stdout().flush();
    code.into()
}

fn cli_main(args: Vec<std::ffi::OsString>) -> u8 {
    let cli = Cli::parse_from(args);
    match cli.command {
        Subcommands::Check { cgroup_parent } => check(cgroup_parent),
        Subcommands::Run(args) => run(args),
    }
}

fn check(cgroup_parent: Option<PathBuf>) -> u8 {
    let mut findings = run_checks(cgroup_parent.as_deref());
    // Which file-system modes work, tried where a sandbox can run at all (why not is said above).
    if !findings.iter().any(|f| f.status == Status::Fail) {
        let probes = sandbox::runner::probe_fs_modes(cgroup_parent.as_deref());
        findings.push(fs_finding(&probes, !nix::unistd::geteuid().is_root()));
    }
    for finding in &findings {
        println!("{finding}");
    }
    if findings.iter().any(|f| f.status == Status::Fail) {
        println!("sandbox run cannot work here: fix the FAIL lines above");
        1
    } else {
        println!("sandbox run works here");
        0
    }
}

/// Signals the launcher passes to the sandbox (whose init passes them to the command).
const FORWARDED: [Signal; 6] =
    [Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM, Signal::SIGUSR1, Signal::SIGUSR2];

fn run(args: RunArgs) -> u8 {
    let fail = |message: String, code: u8| {
        eprintln!("sandbox: {message}");
        code
    };
    let sandbox = match Sandbox::with_environment(args.config()) {
        Ok(sandbox) => sandbox,
        // Bad input found before anything was created: a usage error.
        Err(err) => return fail(err.to_string(), 2),
    };
    let mut command = Command::new(&args.command[0]);
    command.args(&args.command[1..]).foreground_terminal(true);
    // Only a launcher in the terminal's foreground hands it over, and so takes it back (one in
    // the background must not take the foreground at its end).
    let took_terminal = command.takes_terminal();

    // Signals for the command go through the launcher: block them here; waiting takes them and
    // passes them on (the init un-blocks nothing of ours; the command starts unblocked).
    let mut forwarded = SigSet::empty();
    for signal in FORWARDED {
        forwarded.add(signal);
    }
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None);

    let running = match sandbox.spawn(&command) {
        Ok(running) => running,
        Err(err) => return fail(err.to_string(), err.exit_code() as u8),
    };
    let outcome = running.wait_forwarding(&forwarded);
    if took_terminal {
        sandbox::Running::restore_terminal();
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => return fail(err.to_string(), err.exit_code() as u8),
    };
    // One write: stderr is unbuffered, and the summary's pieces would each be a system call.
    let mut summary = format!("sandbox: {outcome}\n");
    if !outcome.processes.is_empty() {
        summary.push_str(&format!("sandbox: {}\n", sandbox::processes::render(&outcome.processes)));
    }
    for process in &outcome.escaped {
        summary.push_str(&format!("sandbox:   outside the run's cgroup: {process}\n"));
    }
    // Formatted in place: a line each of a thousand changes, each its own string, had the
    // allocator map and unmap pages once past the launcher's arena.
    let changes = outcome.fs_changes.as_deref().unwrap_or_default();
    summary.reserve(changes.len() * 80);
    for change in changes {
        let _ = writeln!(summary, "sandbox:   {change}");
    }
    let _ = std::io::stderr().write_all(summary.as_bytes());
    if let Some(path) = &args.json {
        let text = outcome.to_json().to_string();
        let written = if path.as_os_str() == "-" {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{text}").and_then(|_| stdout.flush())
        } else {
            std::fs::write(path, text + "\n")
        };
        if let Err(err) = written {
            return fail(format!("writing the JSON outcome to {}: {err}", path.display()), 125);
        }
    }
    match outcome.status.shell_code().clamp(0, 255) as u8 {
        // The command succeeded, but changed host files under --host-writes fail, or its
        // limits did not hold.
        0 if outcome.refused_host_writes() || !outcome.contained() => 1,
        code => code,
    }
}
