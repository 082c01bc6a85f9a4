//! A sandbox whose command runs: waiting for it (with its timeout, passing signals on), its
//! reports, and its teardown.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::cgroup::{RunCgroup, Stats};
use crate::processes::{self, EscapedProcess, ProcessInfo};
use crate::init::Report;
use crate::mounts::Step;
use crate::outcome::{Enforcements, ExitStatus, Outcome};
use crate::sys;

use super::error::io_error;
use super::Error;

/// How long the init may take to end the sandbox at its timeout before everything is killed at once.
const END_GRACE: Duration = Duration::from_secs(2);

/// A sandbox whose command is running. Dropping it without [`Running::wait`] kills everything in
/// it and removes its cgroup.
pub struct Running {
    pub(super) pid: Pid,
    pub(super) pidfd: OwnedFd,
    /// `None` in rootless mode without a delegated cgroup.
    pub(super) cgroup: Option<Box<dyn RunCgroup>>,
    pub(super) report: OwnedFd,
    pub(super) started: Instant,
    pub(super) timeout: Option<Duration>,
    pub(super) steps: std::sync::Arc<[Step]>,
    pub(super) program: String,
    pub(super) limits: crate::config::Limits,
    pub(super) enforcement: Enforcements,
    /// `fs = overlay`: the layer, read for the run's changes once it has ended.
    pub(super) layer: Option<super::layer::Layer>,
    /// Write end of the init's release pipe (see `Report::Leftovers`); `None` once used, or
    /// once the reports ended.
    pub(super) release: Option<OwnedFd>,
    /// Reports read while waiting, for the end.
    pub(super) early_reports: Vec<Report>,
    /// Processes of the run found outside its cgroup.
    pub(super) escaped: Vec<EscapedProcess>,
    pub(super) waited: bool,
    /// The stack of an init that shares our memory; dropped after the init was reaped.
    pub(super) _init_stack: Option<sys::ChildStack>,
    /// Not `Send`: the init is tied to the spawning thread's life (`PR_SET_PDEATHSIG`), so the
    /// run must be waited for there.
    pub(super) _spawning_thread: std::marker::PhantomData<*const ()>,
}

impl Running {
    /// PID of the sandbox's init, in the launcher's PID namespace.
    pub fn init_pid(&self) -> Pid {
        self.pid
    }

    /// The run's own cgroup directories (not those it shares with other contained runs).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup.as_ref().map(|c| c.own_paths()).unwrap_or_default()
    }

    /// Sends `signal` to the sandbox's init, which forwards it to the command.
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        sys::pidfd_send_signal(self.pidfd.as_fd(), signal).map_err(io_error("signalling the sandbox"))
    }

    /// Makes the launcher's process group the terminal's foreground again, after a command
    /// started with [`Command::foreground_terminal`](crate::Command::foreground_terminal) ended.
    pub fn restore_terminal() {
        let _ = sys::restore_terminal_foreground(0);
    }

    /// Kills every process of the sandbox at once.
    pub fn kill(&self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        }
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), Signal::SIGKILL);
    }

    /// Ends the sandbox at its timeout: asks the init to kill and reap everything (so that all
    /// of its CPU time is accounted), and kills it all at once if that has not happened within
    /// [`END_GRACE`] (a process stuck in the kernel, a stopped init).
    fn end(&self) {
        let asked = sys::pidfd_send_signal(self.pidfd.as_fd(), crate::init::END_SIGNAL).is_ok();
        if !(asked && matches!(sys::poll_either(self.pidfd.as_fd(), None, Some(END_GRACE)), Ok((true, _)))) {
            self.kill();
        }
    }

    /// Waits for the command to end (or the timeout to fire), tears the sandbox down and reports.
    pub fn wait(self) -> Result<Outcome, Error> {
        self.wait_inner(Watch::Nothing)
    }

    /// Like [`wait`](Running::wait), and meanwhile passes `signals` sent to this process on to
    /// the command (this thread must have them blocked). Those a terminal generated are not
    /// passed: the terminal sent them to the command's process group already.
    pub fn wait_forwarding(self, signals: &SigSet) -> Result<Outcome, Error> {
        let signalfd = SignalFd::with_flags(signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io_error("creating a signalfd"))?;
        self.wait_inner(Watch::Signals(&signalfd))
    }

    /// Like [`wait`](Running::wait), but ends the sandbox as soon as `client` (the read end of
    /// a pipe whose writer sends nothing while this runs) reads as ended: a fork server's test
    /// must not outlive the test process that asked for it.
    pub(crate) fn wait_unless_hung_up(self, client: BorrowedFd<'_>) -> Result<Outcome, Error> {
        self.wait_inner(Watch::HangUp(client))
    }

    fn wait_inner(mut self, watch: Watch<'_>) -> Result<Outcome, Error> {
        let deadline = self.timeout.map(|t| self.started + t);
        let mut timed_out = false;
        let mut processes = Vec::new();
        let watched = match &watch {
            Watch::Nothing => None,
            Watch::Signals(fd) => Some(fd.as_fd()),
            Watch::HangUp(fd) => Some(*fd),
        };
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // The reports, while the init may still ask to be released.
            let reports = self.release.as_ref().map(|_| self.report.as_fd());
            match sys::poll_readable([Some(self.pidfd.as_fd()), watched, reports], remaining) {
                Ok([true, _, _]) => break,
                Ok([false, _, true]) => self.take_reports(),
                Ok([false, true, false]) => match &watch {
                    Watch::Signals(signals) => {
                        while let Ok(Some(info)) = signals.read_signal() {
                            let from_terminal = info.ssi_code == libc::SI_KERNEL;
                            if let (false, Ok(signal)) = (from_terminal, Signal::try_from(info.ssi_signo as i32)) {
                                let _ = self.signal(signal);
                            }
                        }
                    }
                    Watch::HangUp(_) => {
                        self.kill();
                        break;
                    }
                    Watch::Nothing => {}
                },
                Ok(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    timed_out = true;
                    self.escaped = self.find_escaped();
                    processes = self.still_running();
                    self.end();
                    break;
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(errno) => return Err(io_error("waiting for the sandbox")(errno)),
            }
        }
        // Reaping the init returns only after every process of its PID namespace is gone.
        let (init_status, usage) = sys::wait_pidfd(self.pidfd.as_fd()).map_err(io_error("waiting for the sandbox"))?;
        self.waited = true;
        let wall = self.started.elapsed();
        let reports = self.read_reports();
        // Read before the cgroup goes: the layer's pages are charged to it. A run whose set-up
        // failed has none to read (the init may have sent the layer before the step that
        // failed): its failure is the news.
        let host_writes = self.layer.as_ref().map(|layer| layer.host_writes).unwrap_or_default();
        let set_up = !reports.iter().any(|report| self.report_error(*report, timed_out).is_some());
        let layer = self.layer.take().filter(|_| set_up);
        let fs_changes = layer.map(super::layer::Layer::finish).transpose()?;
        let cgroup_version = self.cgroup.as_ref().map(|c| c.version());
        let mut limits_changed = Vec::new();
        let cgroup_dirs = self.cgroup_paths();
        let stats = match self.cgroup.take() {
            Some(mut cgroup) => {
                limits_changed = cgroup.limits_changed();
                let stats = cgroup.stats();
                cgroup.release()?;
                let mut stats = stats?;
                stats.cpu_usec = stats.cpu_usec.or(Some(usage.cpu_usec));
                stats
            }
            // Without a cgroup, what the kernel accounted to the init and the processes it reaped.
            None => Stats { peak_memory_bytes: Some(usage.max_rss_bytes), cpu_usec: Some(usage.cpu_usec), ..Stats::default() },
        };

        let mut exited = None;
        for report in reports {
            if let Report::Exited { wait_status } = report {
                exited = Some(wait_status);
            } else if let Some(err) = self.report_error(report, timed_out) {
                return Err(err);
            }
        }
        // Without a report the init itself was killed (timeout, OOM killer, a SIGKILL from outside):
        // its own status is the best there is.
        let status = ExitStatus::from_wait_status(exited.unwrap_or(init_status));
        Ok(Outcome {
            status,
            timed_out,
            timeout: self.timeout,
            limits: self.limits.clone(),
            stats,
            wall,
            cgroup_version,
            enforcement: self.enforcement.clone(),
            processes,
            fs_changes,
            host_writes,
            escaped: std::mem::take(&mut self.escaped),
            limits_changed,
            cgroup_dirs,
        })
    }

    /// Every process of the sandbox but its init, read at the timeout before anything is
    /// killed. Each one is read just before the cgroup is frozen (a frozen process shows the
    /// freezer's state and wait channel); the list is the frozen one, in which nothing forks or
    /// exits: a process gone meanwhile is left out, one forked meanwhile is read frozen.
    fn still_running(&mut self) -> Vec<ProcessInfo> {
        let init = self.pid.as_raw() as u32;
        let read_all = |listed: Vec<(u32, String)>| -> Vec<ProcessInfo> {
            listed.into_iter().filter_map(|(pid, state)| processes::read(pid, state)).collect()
        };
        let before = read_all(processes::in_pid_namespace_of(init));
        let Some(cgroup) = self.cgroup.as_mut() else { return before };
        if !cgroup.set_frozen(true) {
            // Half frozen, perhaps (the freeze did not settle in time): thawed again.
            cgroup.set_frozen(false);
            return before;
        }
        let frozen = processes::in_pid_namespace_of(init)
            .into_iter()
            .filter_map(|(pid, state)| {
                before.iter().find(|seen| seen.host_pid == pid).cloned().or_else(|| processes::read(pid, state))
            })
            .collect();
        cgroup.set_frozen(false);
        frozen
    }

    /// The error a failure report of the init stands for (`None` for an exec failure after the
    /// timeout killed the sandbox, and for the command's exit).
    fn report_error(&self, report: Report, timed_out: bool) -> Option<Error> {
        let setup = |step: String, errno: i32| {
            let source = Errno::from_raw(errno);
            Some(Error::Setup { step, source, hint: super::error::step_hint(None, source) })
        };
        match report {
            Report::StepFailed { index, errno } => {
                let step = self.steps.get(index as usize);
                let source = Errno::from_raw(errno);
                Some(Error::Setup {
                    step: step.map(Step::describe).unwrap_or_else(|| format!("set-up step {index}")),
                    source,
                    hint: super::error::step_hint(step, source),
                })
            }
            Report::RlimitsFailed { errno } => setup("setting the fallback rlimits (RLIMIT_NPROC, RLIMIT_AS)".into(), errno),
            Report::JoinFailed { index, errno } => {
                let dir = self.cgroup.as_ref().and_then(|c| c.paths().get(index as usize).cloned());
                let tasks = dir.map_or_else(|| format!("cgroup {index}"), |dir| dir.join("tasks").display().to_string());
                setup(format!("joining the run's cgroup (writing 0 to {tasks})"), errno)
            }
            Report::StdioFailed { errno } => setup("redirecting the command's stdio".into(), errno),
            Report::ChdirFailed { errno } => setup("changing to the command's working directory".into(), errno),
            Report::ForkFailed { errno } => setup("starting the command (fork)".into(), errno),
            Report::NoNewPrivsFailed { errno } => setup("setting no_new_privs (prctl PR_SET_NO_NEW_PRIVS)".into(), errno),
            Report::CapabilitiesFailed { errno } => {
                setup("dropping the capabilities that reach the kernel (prctl PR_CAPBSET_DROP, capset)".into(), errno)
            }
            Report::FilterFailed { errno } => {
                setup("installing the seccomp filter (the host-wide operations and the bind notifier; its socket pair to the init)".into(), errno)
            }
            Report::UserNamespaceFailed { errno } => {
                setup("entering the run's user namespace (setns, unshare CLONE_NEWNS|CLONE_NEWCGROUP)".into(), errno)
            }
            Report::SessionFailed { errno } => setup("giving the command a session and process group (setsid, setpgid)".into(), errno),
            Report::ExecFailed { errno } if !timed_out => {
                Some(Error::Exec { program: self.program.clone(), source: Errno::from_raw(errno) })
            }
            Report::ExecFailed { .. } | Report::Exited { .. } | Report::Leftovers => None,
        }
    }

    /// A set-up failure the init reported before it exited, if it did.
    pub(super) fn setup_failure(&self) -> Option<Error> {
        self.read_reports().into_iter().find_map(|report| self.report_error(report, false))
    }

    /// Reads the reports there are now: a [`Report::Leftovers`] is answered (the processes
    /// left are looked at, then the init is released), the others kept for the end.
    fn take_reports(&mut self) {
        loop {
            match Report::read_from(self.report.as_fd()) {
                Ok(Some(Report::Leftovers)) => {
                    self.escaped = self.find_escaped();
                    if let Some(release) = self.release.take() {
                        let _ = nix::unistd::write(&release, &[1]);
                    }
                }
                Ok(Some(report)) => self.early_reports.push(report),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                // The init is gone (or wrote something else): nothing more to answer.
                Ok(None) | Err(_) => {
                    self.release = None;
                    return;
                }
            }
        }
    }

    /// The run's processes (the init among them) that are outside its cgroup, each with where
    /// it is: a process of the PID namespace missing from a run directory's subtree. Read
    /// while they are still there: when the command has ended and others are left, and at the
    /// timeout.
    fn find_escaped(&self) -> Vec<EscapedProcess> {
        let Some(cgroup) = &self.cgroup else { return Vec::new() };
        let dirs = cgroup.paths();
        let init = self.pid.as_raw() as u32;
        // The namespace first, then the cgroups: a process forked in between is in both.
        let mut all: Vec<(u32, String)> = vec![(init, "S".to_string())];
        all.extend(processes::in_pid_namespace_of(init));
        let outside = |all: Vec<(u32, String)>| -> Vec<(u32, String, &std::path::PathBuf)> {
            let members: Vec<Vec<u32>> = dirs.iter().map(|dir| processes::in_cgroup_subtree(dir)).collect();
            all.into_iter()
                .filter_map(|(pid, state)| {
                    let left = dirs.iter().zip(&members).find(|(_, inside)| !inside.contains(&pid))?.0;
                    Some((pid, state, left))
                })
                .collect()
        };
        let candidates = outside(all);
        if candidates.is_empty() {
            return Vec::new();
        }
        // A second look settles a process that moved in the meantime (one just made by a
        // process inside is inside by now); one that is gone is no longer there to report.
        outside(candidates.into_iter().map(|(pid, state, _)| (pid, state)).collect())
            .into_iter()
            .filter_map(|(host_pid, state, left)| {
                let cgroup = processes::cgroup_in_hierarchy_of(host_pid, left)?;
                // A process that has exited (a zombie, not yet reaped) is in no cgroup's list any
                // more, and v1 shows it in the root cgroup: it ended, as one that left and ended
                // before the command did (README, "What it is not").
                if state == "Z" {
                    return None;
                }
                Some(EscapedProcess { process: processes::read(host_pid, state)?, cgroup })
            })
            .collect()
    }

    fn read_reports(&self) -> Vec<Report> {
        let mut reports = self.early_reports.clone();
        while let Ok(Some(report)) = Report::read_from(self.report.as_fd()) {
            reports.push(report);
        }
        reports
    }
}

/// What [`Running::wait_inner`] watches besides the sandbox.
enum Watch<'a> {
    Nothing,
    /// Signals to pass on to the command.
    Signals(&'a SignalFd),
    /// A client whose end means the run is no longer wanted.
    HangUp(BorrowedFd<'a>),
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.waited {
            self.kill();
            let _ = sys::wait_pidfd(self.pidfd.as_fd());
        }
        // The cgroup's own Drop removes it.
    }
}
