//! The launcher: creates the run's cgroup, clones the sandbox's init into new namespaces, waits
//! for it with the timeout, and turns what the kernel reports into an [`Outcome`].

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::cgroup::{plan_run_cgroup, CgroupError, Creation, InitJoin, Placement, RunCgroup};
use crate::config::{Config, ConfigError, FsMode, HostWrites, NetMode};
use crate::init::{InitArgs, LaunchersFd};
use crate::mounts::{self, OverlayInput, PlanInput, Step};
use crate::outcome::{Enforcements, Outcome};
use crate::sys::{self, Cloned};

mod command;
mod error;
mod layer;
mod running;

use command::ExecStrings;
pub use command::Command;
pub use error::Error;
use error::io_error;
pub use running::Running;

/// A run's cgroup, or why it has none (then rlimits stand in for the limits).
type CgroupChoice = (Option<Box<dyn RunCgroup>>, Option<String>);

/// A validated sandbox configuration, ready to run commands.
#[derive(Debug, Clone)]
pub struct Sandbox {
    config: Config,
    rootfs: Option<PathBuf>,
}

impl Sandbox {
    /// Checks `config` (nothing is created yet). It is taken as it is: see
    /// [`Sandbox::with_environment`] for what the environment adds.
    pub fn new(config: Config) -> Result<Sandbox, Error> {
        config.validate()?;
        let rootfs = match &config.rootfs {
            Some(dir) => Some(std::fs::canonicalize(dir).map_err(|source| ConfigError::Missing {
                what: "--rootfs",
                path: dir.clone(),
                source,
            })?),
            None => None,
        };
        Ok(Sandbox { config, rootfs })
    }

    /// [`Sandbox::new`] with what the environment adds for runs that have no command line of
    /// their own (the CLI and `#[isolated]` tests use it): `SANDBOX_CGROUP_PARENT` as the cgroup
    /// parent when `config` names none (ignored inside a run, whose cgroup the run nests in),
    /// `SANDBOX_REQUIRE=cgroup` as [`Config::require_cgroup`], and `SANDBOX_FS=ro` as
    /// [`Config::fs`] when `config` keeps the host's file systems as they are.
    pub fn with_environment(config: Config) -> Result<Sandbox, Error> {
        Sandbox::with_environment_for(config, None)
    }

    /// [`Sandbox::with_environment`] for the run of one test, `name`: under
    /// `SANDBOX_KEEP_CHANGES=DIR` its changes go to `DIR/<name>` (the CLI's to `DIR`).
    pub(crate) fn with_environment_for(mut config: Config, name: Option<&str>) -> Result<Sandbox, Error> {
        match std::env::var("SANDBOX_REQUIRE") {
            Ok(value) if value == "cgroup" => config.require_cgroup = true,
            Ok(value) if !value.is_empty() => return Err(Error::BadRequire(value)),
            _ => {}
        }
        match std::env::var("SANDBOX_FS") {
            // A suite's default: a run that asks for nothing else.
            Ok(value) if !value.is_empty() && config.fs == FsMode::Host => {
                config.fs = FsMode::parse(&value).ok_or(Error::BadFs(value))?;
            }
            _ => {}
        }
        if config.fs == FsMode::Overlay {
            // Overlay runs' defaults; the other modes have no layer to apply them to.
            match std::env::var("SANDBOX_HOST_WRITES") {
                Ok(value) if !value.is_empty() => {
                    config.host_writes = HostWrites::parse(&value).ok_or(Error::BadHostWrites(value))?;
                }
                _ => {}
            }
            match std::env::var_os("SANDBOX_KEEP_CHANGES") {
                Some(dir) if !dir.is_empty() && config.keep_changes.is_none() => {
                    let dir = PathBuf::from(dir);
                    config.keep_changes = Some(match name {
                        Some(name) => dir.join(name),
                        None => dir,
                    });
                }
                _ => {}
            }
        }
        if config.cgroup_parent.is_none() {
            config.cgroup_parent = crate::cgroup::parent_from_environment();
        }
        Sandbox::new(config)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration for one command, and the directory it starts in. Without `--rootfs` the
    /// command starts where the launcher is (or in [`Command::current_dir`]); when that lies below
    /// one of the sandbox's tmpfs mounts (a project checked out under `/tmp`), the new tmpfs would
    /// hide it, so the directory is bound back at its own path.
    /// The third value is the index of that bind in the config's.
    fn with_working_directory(&self, command: &Command) -> (std::borrow::Cow<'_, Config>, Option<PathBuf>, Option<usize>) {
        let config = std::borrow::Cow::Borrowed(&self.config);
        if self.rootfs.is_some() {
            return (config, command.cwd.clone(), None);
        }
        let Some(cwd) = command.cwd.clone().or_else(|| std::env::current_dir().ok()) else {
            return (config, None, None);
        };
        let hidden = config.tmpfs.iter().any(|t| cwd != t.path && cwd.starts_with(&t.path));
        let already_bound = config.binds.iter().any(|b| cwd.starts_with(&b.target));
        if !hidden || already_bound {
            return (config, Some(cwd), None);
        }
        let mut config = config.into_owned();
        // Under `--fs ro` a directory like any other: read-only.
        let read_only = config.fs == FsMode::ReadOnly;
        config.binds.push(crate::config::BindMount { source: cwd.clone(), target: cwd.clone(), read_only });
        let index = config.binds.len() - 1;
        (std::borrow::Cow::Owned(config), Some(cwd), Some(index))
    }

    /// Runs `command` to the end and reports what happened.
    pub fn run(&self, command: &Command) -> Result<Outcome, Error> {
        self.spawn(command)?.wait()
    }

    /// Starts `command` in a new sandbox. The returned [`Running`] must be waited for from the
    /// same thread (the sandbox's init is tied to this thread's life by `PR_SET_PDEATHSIG`).
    ///
    /// ```
    /// use sandbox::{Command, Config, Ending, Sandbox};
    ///
    /// let running = Sandbox::new(Config::default())?.spawn(Command::new("sleep").arg("60"))?;
    /// running.kill();
    /// let outcome = running.wait()?;
    /// assert_eq!(outcome.ending(), Ending::Signaled(9));
    /// # Ok::<(), sandbox::Error>(())
    /// ```
    pub fn spawn(&self, command: &Command) -> Result<Running, Error> {
        let (config, cwd, hidden_cwd_bind) = self.with_working_directory(command);
        let bind_sources = open_bind_sources(&config)?;
        let bind_fds: Vec<RawFd> = bind_sources.iter().map(|fd| fd.as_raw_fd()).collect();
        // Without root, namespaces come from a user namespace and limits from a delegated cgroup,
        // or, where there is none, from rlimits: weaker, and said so in the outcome.
        let rootless = !nix::unistd::geteuid().is_root();
        let tmpdir = command.env_var("TMPDIR").map(PathBuf::from);
        let host_mounts = match config.fs {
            FsMode::ReadOnly | FsMode::Overlay => mounts::host_mounts().map_err(|source| Error::Io { action: "reading /proc/self/mountinfo", source })?,
            FsMode::Host => std::sync::Arc::from([]),
        };
        // The overlay's socket for the layer, and the rootfs's descriptor number, reserved
        // here for the init to reopen it onto.
        let overlay_fds = match config.fs {
            FsMode::Overlay => Some(overlay_fds(self.rootfs.as_deref())?),
            _ => None,
        };
        // An overlay made in a user namespace keeps its metadata in `user.` extended
        // attributes and meets locked mounts: a rootless run's, and one nested in a contained
        // run (root there is root of the outer run's namespace).
        let in_user_namespace = rootless || (overlay_fds.is_some() && sys::in_child_user_namespace());
        let overlay = overlay_fds.as_ref().map(|fds| OverlayInput {
            layer_socket: fds.init_socket.as_raw_fd(),
            rootfs_fd: fds.rootfs.as_ref().map(|fd| fd.as_raw_fd()),
            rootless: in_user_namespace,
        });
        let (cgroup, no_cgroup_reason) = self.choose_cgroup(rootless)?;
        let namespace_mounts = cgroup.as_deref().filter(|_| self.contained(rootless)).map(RunCgroup::namespace_mounts);
        let plan_input = PlanInput {
            rootfs: self.rootfs.as_deref(),
            bind_fds: &bind_fds,
            tmpdir: tmpdir.as_deref(),
            host_mounts: &host_mounts,
            overlay,
            hidden_cwd_bind,
            cgroup_namespace: namespace_mounts.as_deref(),
        };
        let plan = mounts::plan(&config, plan_input);
        // Shared with `Running` (which names a failed step): the init reads them meanwhile.
        let steps: std::sync::Arc<[Step]> = plan.steps.into();
        let exec = ExecStrings::new(command, cwd)?;

        let placement = cgroup.as_deref().map(RunCgroup::placement).transpose().map_err(|e| self.cgroup_error(e))?;
        let Placement { clone_into, joins } = placement.unwrap_or_default();
        let join_cgroups: Vec<(RawFd, Option<&CStr>)> = joins.iter().map(InitJoin::for_init).collect();
        let enforcement = Enforcements {
            privileged: !rootless && self.config.privileged,
            ..Enforcements::for_limits(&self.config.limits, no_cgroup_reason.clone())
        };
        let rlimits = if no_cgroup_reason.is_some() { rlimits_for(&self.config.limits) } else { Vec::new() };

        let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_error("creating a pipe"))?;
        // For the init to check that this process still lives once its PDEATHSIG is armed.
        let launcher = sys::pidfd_open(nix::unistd::getpid()).ok();
        // The launcher's word that the init may kill what the command left (see
        // `Report::Leftovers`).
        let (release_read, release_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_error("creating a pipe"))?;
        let (report_read, report_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(io_error("creating a pipe"))?;
        // Only the read end is non-blocking for the launcher: the init writes small reports.
        nix::fcntl::fcntl(report_write.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
            .map_err(io_error("configuring a pipe"))?;

        // The init shares this process's memory (no copy of it to make and tear down), also
        // where it is created inside its v2 cgroup, except on architectures for which
        // `sys::clone_sharing_memory_into` has no instructions.
        let (stack, started_read, started_write) = if clone_into.is_none() || sys::CLONE3_SHARES_MEMORY {
            let stack = sys::ChildStack::new(INIT_STACK_BYTES).map_err(io_error("mapping the init's stack"))?;
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_error("creating a pipe"))?;
            (Some(stack), Some(read), Some(write))
        } else {
            (None, None, None)
        };

        let flags = self.namespace_flags(rootless);
        // Where it is yet to be made (the first contained run of a process), it is made after
        // "go", while the init joins and mounts its cgroups, and sent to it then.
        let user_namespace = match self.contained(rootless) {
            false => None,
            true => Some(match kept_user_namespace() {
                Some(namespace) => LaunchersFd::Inherited(namespace),
                None => LaunchersFd::opened_later().map_err(io_error("creating a socket pair for the user namespace"))?,
            }),
        };
        let stdio: [Option<RawFd>; 3] = std::array::from_fn(|i| command.stdio[i].as_ref().map(|fd| fd.as_raw_fd()));
        let kept_fds: Vec<RawFd> = command.kept_fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let init_args = InitArgs {
            steps: &steps,
            program: &exec.program,
            executable: command.executable.as_ref().map(|fd| fd.as_raw_fd()),
            argv: &exec.argv,
            envp: &exec.envp,
            cwd: exec.cwd.as_deref(),
            stdio,
            kept_fds: &kept_fds,
            take_terminal: command.take_terminal,
            no_new_privs: !self.config.allow_new_privileges,
            contained: self.contained(rootless),
            user_namespace: user_namespace.as_ref(),
            function: command.function,
            rlimits: &rlimits,
            go_read: go_read.as_raw_fd(),
            go_write: go_write.as_raw_fd(),
            // In a user namespace the mounts need the id maps the launcher writes first.
            steps_before_go: !rootless,
            steps_in_cgroup_from: plan.in_cgroup_from,
            report: report_write.as_raw_fd(),
            release: release_read.as_raw_fd(),
            launcher: launcher.as_ref().map(|fd| fd.as_fd()),
            started: started_write.as_ref().map(|fd| fd.as_raw_fd()),
            join_cgroups: &join_cgroups,
            cpus: sys::spare_cpus(),
        };
        let started = Instant::now();
        // SAFETY: the child side runs only `init::run`, which keeps to async-signal-safe calls
        // on data prepared above, and ends in exec or _exit. The one exception, a function
        // command (`Command::for_function`), is only created by fork servers (the runner's and
        // the stock harness's), which are single-threaded, so their copies may allocate.
        let cloned = match &stack {
            // The init shares this process's memory. For both calls: as above; and `init_args`
            // with all it refers to stays unchanged until the init says it has started the
            // command (below), the stack outlives the init (it goes into `Running`, which reaps
            // the init before dropping it), and this thread allocates nothing between "go" and
            // that sign once the init may start the command (with the user namespace sent, for
            // a contained run), so that a test body forked from the init copies a consistent
            // heap.
            Some(stack) => match clone_into {
                // SAFETY: see above.
                Some(cgroup_dir) => unsafe { sys::clone_sharing_memory_into(flags, cgroup_dir, stack, crate::init::run, &init_args) },
                // SAFETY: see above.
                None => unsafe { sys::clone_sharing_memory(flags, stack, crate::init::run, &init_args) }.map(|(pid, pidfd)| (pid, pidfd, false)),
            }
            .map(|(pid, pidfd, placed_in_cgroup)| Cloned::Parent { pid, pidfd, placed_in_cgroup }),
            // SAFETY: as above; the child gets a copy of this process and runs only `init::run`.
            None => unsafe { sys::clone_process(flags, clone_into) },
        };
        let (pid, pidfd, placed) = match cloned {
            Ok(Cloned::Child) => crate::init::run(&init_args),
            Ok(Cloned::Parent { pid, pidfd, placed_in_cgroup }) => (pid, pidfd, placed_in_cgroup),
            Err(source) => return Err(Error::Namespaces { flags: sys::clone_flag_names(flags), source }),
        };
        // It sets up on another CPU while this one makes its cgroup (before "go", after which it
        // takes the whole set back).
        if let Some(cpus) = &init_args.cpus {
            sys::start_elsewhere(pid, cpus);
        }
        // `go_read` stays open here until "go" is written: an init that failed a set-up step and
        // exited must not turn that write into a SIGPIPE.
        let layer_socket = overlay_fds.map(|fds| fds.launcher_socket);
        drop((report_write, release_read, bind_sources, launcher, started_write));
        let layer = layer_socket.map(|socket| {
            let keep = self.config.keep_changes.clone();
            layer::Layer::new(socket, plan.trees, in_user_namespace, self.config.host_writes, keep)
        });
        let mut running = Running {
            pid,
            pidfd,
            cgroup,
            report: report_read,
            started,
            timeout: self.config.timeout,
            steps: std::sync::Arc::clone(&steps),
            program: command.program.to_string_lossy().into_owned(),
            limits: self.config.limits.clone(),
            enforcement,
            layer,
            release: Some(release_write),
            early_reports: Vec::new(),
            escaped: Vec::new(),
            waited: false,
            _init_stack: stack,
            _spawning_thread: std::marker::PhantomData,
        };
        // From here on, an error drops `running`: it kills the init (still waiting for "go")
        // and removes the cgroup.
        self.start(&mut running, rootless, placed, &go_write, started_read, user_namespace.as_ref())?;
        // From here on the init reads nothing of `init_args`. (On an early return above,
        // `running`, declared after them, is dropped first: it kills and reaps the init.)
        drop(go_read);
        if let Some(cgroup) = &running.cgroup {
            cgroup.remove_stale_runs();
        }
        Ok(running)
    }

    /// A cgroup failure as an error: one that `--require cgroup` names as such.
    fn cgroup_error(&self, cause: CgroupError) -> Error {
        match self.config.require_cgroup {
            true => Error::CgroupRequired { cause },
            false => Error::Cgroup(cause),
        }
    }

    /// The run's cgroup, or (rootless, no cgroup required) why there is none. It is chosen
    /// before the clone: v2 creates the init inside it (CLONE_INTO_CGROUP), and on v1 the init
    /// joins its directories itself. As root, v1 directories are made while the init sets up
    /// its mounts (the init only waits for them before it starts the command): the two are the
    /// largest parts of a sandbox's start and need not wait for each other. Rootless runs make
    /// their cgroup before the clone, to fall back on rlimits when they cannot.
    fn choose_cgroup(&self, rootless: bool) -> Result<CgroupChoice, Error> {
        let (parent, limits) = (self.config.cgroup_parent.as_deref(), &self.config.limits);
        let when = if rootless { Creation::Now } else { Creation::WhileTheInitStarts };
        match plan_run_cgroup(parent, limits, when, self.contained(rootless)) {
            Ok(cgroup) => Ok((Some(cgroup), None)),
            Err(cause) if rootless && !self.config.require_cgroup => Ok((None, Some(cause.to_string()))),
            Err(cause) => Err(self.cgroup_error(cause)),
        }
    }

    /// Whether the run is contained: as root, unless `privileged`, its processes live below its
    /// limits in a cgroup namespace of their own (see `mounts::cgroup_namespace`). A rootless
    /// run has no rights to leave its cgroup with.
    fn contained(&self, rootless: bool) -> bool {
        !rootless && !self.config.privileged
    }

    /// The namespaces of a run: PID, mount and UTS always, a user namespace without root, and
    /// network and IPC ones when asked for.
    fn namespace_flags(&self, rootless: bool) -> CloneFlags {
        let mut flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS;
        flags.set(CloneFlags::CLONE_NEWUSER, rootless);
        flags.set(CloneFlags::CLONE_NEWNET, self.config.net == NetMode::None);
        flags.set(CloneFlags::CLONE_NEWIPC, self.config.private_ipc);
        flags
    }

    /// Lets the cloned init go: writes its id maps (rootless), has its cgroup place it
    /// (`cloned_into`: the kernel created it there), says "go", sends a contained run's user
    /// namespace where it is yet to be made, and waits until an init that
    /// shares our memory has started the command (`started`: one byte then, end of file when it
    /// died first).
    fn start(
        &self,
        running: &mut Running,
        rootless: bool,
        cloned_into: bool,
        go_write: &OwnedFd,
        started: Option<OwnedFd>,
        user_namespace: Option<&LaunchersFd>,
    ) -> Result<(), Error> {
        if rootless {
            write_id_maps(running.pid)?;
        }
        if let Some(cgroup) = running.cgroup.as_mut() {
            if let Err(err) = cgroup.place(running.pid, cloned_into).map_err(|e| self.cgroup_error(e)) {
                // An init that already failed a set-up step is gone: that failure is the news.
                return Err(running.setup_failure().unwrap_or(err));
            }
        }
        nix::unistd::write(go_write, &[1]).map_err(io_error("starting the sandbox's init"))?;
        // The init needs it only for the command, after joining and mounting its cgroups.
        if let Some(LaunchersFd::SentLater { launchers, .. }) = user_namespace {
            make_contained_user_namespace(launchers.as_fd())?;
        }
        if let Some(started) = started {
            let mut byte = [0u8; 1];
            while nix::unistd::read(started.as_raw_fd(), &mut byte) == Err(Errno::EINTR) {}
        }
        Ok(())
    }
}

/// Runs `true` in a sandbox of each file-system mode but `host` (`sandbox check`'s `fs` line,
/// [`crate::check::fs_finding`]): each mode's name, and why its run failed, if it did.
pub fn probe_fs_modes(cgroup_parent: Option<&std::path::Path>) -> Vec<(&'static str, Result<(), String>)> {
    [(FsMode::ReadOnly, "ro"), (FsMode::Overlay, "overlay")]
        .into_iter()
        .map(|(fs, name)| {
            // Where the runs would go: the parent given, or the environment's.
            let cgroup_parent = cgroup_parent.map(Into::into).or_else(crate::cgroup::parent_from_environment);
            let config = Config { fs, cgroup_parent, ..Config::default() };
            let ran = Sandbox::new(config).and_then(|sandbox| sandbox.run(Command::new("true").current_dir("/")));
            let result = match ran {
                Ok(outcome) if outcome.success() => Ok(()),
                Ok(outcome) => Err(format!("`true` did not succeed ({outcome})")),
                Err(err) => Err(err.to_string()),
            };
            (name, result)
        })
        .collect()
}

/// An overlay run's descriptors (see `mounts::OverlayInput`).
struct OverlayFds {
    /// The socket pair the init sends the layer on (see `sys::send_directory`).
    launcher_socket: OwnedFd,
    init_socket: OwnedFd,
    /// The rootfs, whose number the init reopens it onto (the layer on `/tmp` may hide its
    /// path); held until the init has started.
    rootfs: Option<OwnedFd>,
}

fn overlay_fds(rootfs: Option<&std::path::Path>) -> Result<OverlayFds, Error> {
    let (launcher_socket, init_socket) = sys::handover_pair().map_err(io_error("creating a socket pair for the overlay"))?;
    let rootfs = rootfs
        .map(|dir| {
            nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                // SAFETY: `open` just returned this descriptor, owned by nobody else.
                .map(|fd| unsafe { sys::own_fd(fd) })
                .map_err(|errno| Error::Io { action: "opening --rootfs", source: errno.into() })
        })
        .transpose()?;
    Ok(OverlayFds { launcher_socket, init_socket, rootfs })
}

/// The bind mounts' sources, opened here to check them and to reserve descriptor numbers that
/// the init reopens them onto (see `mounts::Step::OpenSource`).
fn open_bind_sources(config: &Config) -> Result<Vec<OwnedFd>, Error> {
    let mut sources = Vec::with_capacity(config.binds.len());
    for bind in &config.binds {
        let fd = nix::fcntl::open(&bind.source, OFlag::O_PATH | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|errno| ConfigError::Missing { what: "--bind source", path: bind.source.clone(), source: errno.into() })?;
        // SAFETY: `open` just returned `fd`; nothing else has it.
        sources.push(unsafe { sys::own_fd(fd) });
    }
    Ok(sources)
}

/// The rlimits a run without a cgroup gets instead of its limits (weaker: see the outcome's
/// enforcement).
fn rlimits_for(limits: &crate::config::Limits) -> Vec<(sys::RlimitResource, u64)> {
    let mut rlimits = Vec::new();
    if let Some(pids) = limits.pids {
        rlimits.push((libc::RLIMIT_NPROC, pids));
    }
    if let Some(bytes) = limits.memory_bytes {
        rlimits.push((libc::RLIMIT_AS, bytes));
    }
    rlimits
}

/// The stack of an init that shares the launcher's memory: a test body forked from it runs on
/// (a copy of) it, so it is as large as a main thread's usual 8 MiB (reserved lazily).
const INIT_STACK_BYTES: usize = 8 << 20;

/// Makes the user namespace of this process's contained runs (`sys::identity_user_namespace`)
/// and sends it on `init_socket` to the init, which joins and mounts its cgroups meanwhile
/// (after "go"; no allocation after the send: see `start`). It is made at the first run
/// and kept open ([`kept_user_namespace`]), for copies (fork servers) too, while the process
/// stays in the user namespace it was made from (a test body that runs a sandbox itself has
/// entered its own). Made only where `/proc` shows this process's PID namespace, which a run
/// finds its processes in (checked with it: `/proc` and the PID namespace change only with the
/// user namespace, at a run's command).
fn make_contained_user_namespace(init_socket: BorrowedFd<'_>) -> Result<(), Error> {
    // Sent with the lock released: once the init has it, it may copy this memory for a test
    // body, which must not find the lock held.
    let send = |namespace: RawFd| {
        // SAFETY: the descriptor stays open in `CONTAINED_USER_NAMESPACE`, which replaces it
        // only for a process in another user namespace, which a process enters alone (a
        // multi-threaded one may not).
        let namespace = unsafe { BorrowedFd::borrow_raw(namespace) };
        sys::send_fd(init_socket.as_raw_fd(), namespace).map_err(io_error("handing the user namespace to the init"))
    };
    let made_from = sys::user_namespace_inode().map_err(|source| Error::ContainedUserNamespace { source })?;
    let mut kept = CONTAINED_USER_NAMESPACE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, namespace)) = kept.as_ref().filter(|(from, _)| *from == made_from) {
        let namespace = namespace.as_raw_fd();
        drop(kept);
        return send(namespace);
    }
    if !sys::proc_shows_own_pid_namespace() {
        return Err(Error::ForeignProc);
    }
    let handed_on = sys::identity_user_namespace(move |namespace| {
        let raw = namespace.as_raw_fd();
        *kept = Some((made_from, namespace));
        drop(kept);
        send(raw)
    });
    handed_on.map_err(|source| Error::ContainedUserNamespace { source })?
}

/// The contained runs' user namespace of this process, and the inode of the user namespace it
/// was made from ([`make_contained_user_namespace`]).
static CONTAINED_USER_NAMESPACE: std::sync::Mutex<Option<(u64, OwnedFd)>> = std::sync::Mutex::new(None);

/// The contained runs' user namespace, if this process has made it from the user namespace it
/// is in.
fn kept_user_namespace() -> Option<RawFd> {
    let made_from = sys::user_namespace_inode().ok()?;
    let kept = CONTAINED_USER_NAMESPACE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    kept.as_ref().filter(|(from, _)| *from == made_from).map(|(_, namespace)| namespace.as_raw_fd())
}

/// Maps the launcher's user and group to root inside the sandbox's user namespace (the one
/// mapping an unprivileged process may write).
fn write_id_maps(pid: Pid) -> Result<(), Error> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    for (file, text) in [("setgroups", "deny".to_string()), ("uid_map", format!("0 {uid} 1")), ("gid_map", format!("0 {gid} 1"))] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, text).map_err(|source| Error::UserNamespace { path, source })?;
    }
    Ok(())
}
