//! Fixtures of the reliability suite (`tests/reliability.sh`); not part of `cargo test`.
//!
//! Run without arguments, this is a `harness = false` runner (`sandbox::harness::main`, what
//! `sandbox::main!()` expands to) over 100 rounds `r000` .. `r099` of six `#[isolated]` tests, one
//! per ending: `pass`, `panics` (must fail: "panicked"), `oom` (400 MB under 100M, `expect =
//! "oom"`), `fork_bomb` (a `fork()` loop under pids 20, `expect = "pids_limit"`),
//! `timeout_expected` (`expect = "timeout"`) and `timeout_unexpected` (must fail: "timed out").
//! The script runs them many times and checks every verdict in the runner's `--report FILE`.
//!
//! With a first argument it is a small program for `sandbox run` instead:
//! - `--fork-loop`: forks until the kernel refuses, every child sleeping, and keeps trying (a
//!   fork bomb in Rust; it ends when the sandbox is killed);
//! - `--hold-mb N SECONDS [READY_FILE]`: allocates N MiB, touches every page (then creates
//!   READY_FILE), holds them SECONDS, exits 0.

use std::time::Duration;

/// Forks until the kernel refuses (`EAGAIN` from the pids limit); every child sleeps 30 s.
/// Returns how many children were started; with `forever`, never returns and keeps forking.
fn fork_loop(forever: bool) -> usize {
    let mut children = 0;
    loop {
        // SAFETY: the child only calls async-signal-safe functions and leaves with _exit.
        match unsafe { libc::fork() } {
            // SAFETY: sleep(3) and _exit(2) are async-signal-safe; the child never returns.
            0 => unsafe {
                libc::sleep(30);
                libc::_exit(0)
            },
            -1 if forever => std::thread::sleep(Duration::from_millis(1)),
            -1 => return children,
            _ => children += 1,
        }
    }
}

/// Allocates `mib` MiB and writes to every page, so that the memory is really used.
fn allocate_touched(mib: usize) -> Vec<u8> {
    let mut block = Vec::<u8>::with_capacity(mib << 20);
    block.resize(mib << 20, 1);
    for page in block.iter_mut().step_by(4096) {
        *page = 2;
    }
    std::hint::black_box(block)
}

macro_rules! rounds {
    ($($round:ident)*) => { $(
        mod $round {
            use sandbox::isolated;

            #[isolated(pids = 20, mem = "100M", timeout = "30s")]
            fn pass() {
                let block = super::allocate_touched(8);
                assert_eq!(block.len(), 8 << 20);
                assert_eq!(std::process::id(), 2);
            }

            #[isolated(timeout = "30s")]
            fn panics() {
                panic!("reliability fixture panic");
            }

            #[isolated(mem = "100M", expect = "oom", timeout = "30s")]
            fn oom() {
                let block = super::allocate_touched(400);
                panic!("400 MB allocated under mem = 100M: {}", block.len());
            }

            #[isolated(pids = 20, expect = "pids_limit", timeout = "30s")]
            fn fork_bomb() {
                let children = super::fork_loop(false);
                assert!(children < 20, "{children} children under pids = 20");
            }

            #[isolated(timeout = "300ms", expect = "timeout")]
            fn timeout_expected() {
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }

            #[isolated(timeout = "200ms")]
            fn timeout_unexpected() {
                std::thread::sleep(std::time::Duration::from_secs(30));
            }
        }
    )* };
}

rounds!(
    r000 r001 r002 r003 r004 r005 r006 r007 r008 r009 r010 r011 r012 r013 r014 r015 r016 r017 r018 r019
    r020 r021 r022 r023 r024 r025 r026 r027 r028 r029 r030 r031 r032 r033 r034 r035 r036 r037 r038 r039
    r040 r041 r042 r043 r044 r045 r046 r047 r048 r049 r050 r051 r052 r053 r054 r055 r056 r057 r058 r059
    r060 r061 r062 r063 r064 r065 r066 r067 r068 r069 r070 r071 r072 r073 r074 r075 r076 r077 r078 r079
    r080 r081 r082 r083 r084 r085 r086 r087 r088 r089 r090 r091 r092 r093 r094 r095 r096 r097 r098 r099
);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--fork-loop") => {
            fork_loop(true);
            unreachable!()
        }
        Some("--hold-mb") => {
            let mib = args.get(2).and_then(|a| a.parse().ok()).expect("--hold-mb MIB SECONDS [READY_FILE]");
            let seconds = args.get(3).and_then(|a| a.parse().ok()).expect("--hold-mb MIB SECONDS [READY_FILE]");
            let block = allocate_touched(mib);
            if let Some(ready) = args.get(4) {
                std::fs::write(ready, b"").expect("writing the ready file");
            }
            std::thread::sleep(Duration::from_secs_f64(seconds));
            drop(std::hint::black_box(block));
        }
        // What sandbox::main!() expands to.
        _ => sandbox::harness::main(),
    }
}
