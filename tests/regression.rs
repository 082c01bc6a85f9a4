//! Resource regression testing on the kernel's own figures: a baseline saved from one run fails
//! a later run whose peak memory (the cgroup's memory peak) or peak pids grew, under sandbox's
//! runner and the stock harness; and the runner's memory budget holds down how many tests run
//! at once, counted by the tests themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn runner_fixtures() -> PathBuf {
    common::test_binary("isolated_runner_fixtures")
}

/// Runs `binary ARGS` with `env`; its stdout and stderr together, and its exit code.
fn run(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, Option<i32>) {
    let Output { status, stdout, stderr } =
        Command::new(binary).args(args).envs(env.iter().copied()).env("RUST_BACKTRACE", "0").output().unwrap();
    (String::from_utf8_lossy(&stdout).into_owned() + &String::from_utf8_lossy(&stderr), status.code())
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// A scratch directory that a test body sees too: not below `/tmp`, which is its own in a sandbox.
fn shared_scratch() -> tempfile::TempDir {
    tempfile::tempdir_in("/var/tmp").unwrap()
}

#[test]
fn a_saved_baseline_catches_a_peak_memory_regression() {
    let dir = shared_scratch();
    let baseline = dir.path().join("baseline.jsonl");
    let path = baseline.to_str().unwrap();
    let fixtures = runner_fixtures();

    // Saved: one line per test, sorted, with the figures the kernel recorded.
    let (out, code) = run(&fixtures, &["baseline_probe_", "--save-baseline", path], &[]);
    assert_eq!(code, Some(0), "{out}");
    let saved = lines(&baseline);
    let names: Vec<&str> = saved.iter().map(|line| line["test"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline_probe_allocates", "baseline_probe_tolerates_growth"]);
    let saved_peak = saved[0]["peak_memory_bytes"].as_u64().expect("the cgroup recorded no memory peak");
    assert!(saved_peak >= 4 << 20, "the probe touched 4 MiB, the baseline says {saved_peak}");
    assert!(saved[0]["cpu_usec"].is_u64(), "{saved:?}");

    // The same tests again pass, within the tolerance.
    let (out, code) = run(&fixtures, &["baseline_probe_", "--baseline", path], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("test baseline_probe_allocates ... ok (") && out.contains(" % of its baseline)"), "{out}");

    // 64 MiB instead of 4: caught, with the figure, the baseline and the change; the test with a
    // tolerance of its own (5000 %) passes. The report and JUnit carry the comparison.
    let report = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let grown = [("SANDBOX_PROBE_ALLOCATE_MIB", "64")];
    let args = ["baseline_probe_", "--baseline", path, "--report", report.to_str().unwrap(), "--junit", junit.to_str().unwrap()];
    let (out, code) = run(&fixtures, &args, &grown);
    assert_eq!(code, Some(101), "{out}");
    assert!(out.contains("test baseline_probe_allocates ... FAILED ("), "{out}");
    assert!(out.contains("test baseline_probe_tolerates_growth ... ok ("), "{out}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let entry = json["tests"].as_array().unwrap().iter().find(|t| t["name"] == "baseline_probe_allocates").unwrap();
    let check = &entry["baseline"];
    assert_eq!(check["status"], "above", "{entry}");
    let now = entry["peak_memory_bytes"].as_u64().unwrap();
    assert!(now >= 64 << 20, "{entry}");
    assert_eq!(check["baseline_peak_memory_bytes"].as_u64(), Some(saved_peak));
    assert_eq!(check["peak_memory_change_bytes"].as_i64(), Some(now as i64 - saved_peak as i64));
    let percent = check["peak_memory_change_percent"].as_f64().unwrap();
    let message = format!(
        "used more than its baseline allows: peak mem {}, baseline {} ({percent:+.0} %), allowed ",
        sandbox::units::format_bytes(now),
        sandbox::units::format_bytes(saved_peak)
    );
    assert!(out.contains(&message), "{message:?} not in:\n{out}");
    assert!(entry["message"].as_str().unwrap().starts_with(&message), "{entry}");
    let tolerant = json["tests"].as_array().unwrap().iter().find(|t| t["name"] == "baseline_probe_tolerates_growth").unwrap();
    assert_eq!(tolerant["baseline"]["status"], "within", "{tolerant}");
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/junit.xsd");
    let valid = Command::new("xmllint").args(["--noout", "--schema", schema]).arg(&junit).output();
    let valid = valid.expect("this test needs xmllint (Debian: libxml2-utils; tests/install-deps.sh installs it)");
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stderr));
    let xml = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let case = xml.test_suites[0].test_cases.iter().find(|c| c.name.as_str() == "baseline_probe_allocates").unwrap();
    let property = |name: &str| case.properties.iter().find(|p| p.name.as_str() == name).map(|p| p.value.as_str().to_string());
    assert_eq!(property("baseline").as_deref(), Some("above"));
    assert_eq!(property("baseline_peak_memory_bytes"), Some(saved_peak.to_string()));
    assert_eq!(property("peak_memory_change_bytes"), Some((now as i64 - saved_peak as i64).to_string()));

    // Saving beside a failed comparison keeps the failed test's baseline.
    let (_, code) = run(&fixtures, &["baseline_probe_", "--baseline", path, "--save-baseline", path], &grown);
    assert_eq!(code, Some(101));
    assert_eq!(lines(&baseline)[0]["peak_memory_bytes"].as_u64(), Some(saved_peak), "a regression overwrote its baseline");

    // More processes at once than in the baseline: caught where the kernel counts the peak.
    if common::peak_pids(saved[0]["peak_pids"].as_u64()).is_some() {
        let (out, code) = run(&fixtures, &["--exact", "baseline_probe_allocates", "--baseline", path], &[("SANDBOX_PROBE_CHILDREN", "3")]);
        assert_eq!(code, Some(101), "{out}");
        let then = saved[0]["peak_pids"].as_u64().unwrap();
        assert!(out.contains(&format!("baseline {then} (+")) && out.contains("), may not grow"), "{out}");
    }

    // A test the baseline does not have passes with a note.
    std::fs::write(&baseline, serde_json::to_string(&saved[1]).unwrap() + "\n").unwrap();
    let (out, code) = run(&fixtures, &["baseline_probe_", "--baseline", path], &grown);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("test baseline_probe_allocates ... ok (") && out.contains(", not in the baseline)"), "{out}");

    // A baseline that is not one, or a tolerance that is not one: one message, nothing run.
    std::fs::write(&baseline, "peak 4 MiB\n").unwrap();
    let (out, code) = run(&fixtures, &["baseline_probe_", "--baseline", path], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("baseline.jsonl line 1 is not a test's figures") && !out.contains("running"), "{out}");
    let (out, code) = run(&fixtures, &["baseline_probe_", "--baseline-tolerance", "10"], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--baseline-tolerance: invalid tolerance '10'"), "{out}");
}

/// The stock harness takes the same baselines from the environment, also as nextest runs each
/// test (a process of its own, without a fork server).
#[test]
fn the_stock_harness_saves_and_holds_baselines_named_by_the_environment() {
    let dir = shared_scratch();
    let baseline = dir.path().join("baseline.jsonl");
    let path = baseline.to_str().unwrap();
    let fixtures = common::test_binary("isolated_fixtures");
    let test = ["--exact", "baseline_probe_allocates"];
    let (out, code) = run(&fixtures, &test, &[("SANDBOX_SAVE_BASELINE", path)]);
    assert_eq!(code, Some(0), "{out}");
    let saved = lines(&baseline);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["test"], "baseline_probe_allocates");
    let saved_peak = saved[0]["peak_memory_bytes"].as_u64().expect("the cgroup recorded no memory peak");

    let (out, code) = run(&fixtures, &test, &[("SANDBOX_BASELINE", path)]);
    assert_eq!(code, Some(0), "{out}");
    let nextest = [("SANDBOX_BASELINE", path), ("SANDBOX_PROBE_ALLOCATE_MIB", "64"), ("NEXTEST_EXECUTION_MODE", "process-per-test")];
    for (args, env) in [(&test[..], &nextest[..2]), (&["--exact", "baseline_probe_allocates", "--nocapture"][..], &nextest[..])] {
        let (out, code) = run(&fixtures, args, env);
        assert_eq!(code, Some(101), "{env:?}: {out}");
        assert!(out.contains("used more than its baseline allows: peak mem 6") && out.contains(&format!(", baseline {} (+", sandbox::units::format_bytes(saved_peak))), "{env:?}: {out}");
    }
}

/// Seven tests at four threads: six of `mem = "100M"`, one of `400M`. Each writes how many were
/// running when it started.
fn budget_probes(runner: Option<(&str, &[&str])>, budget: Option<&str>) -> (Vec<usize>, usize, String) {
    let dir = shared_scratch();
    let fixtures = runner_fixtures();
    let mut args = vec!["budget_probe_".to_string(), "--test-threads=4".to_string()];
    if let Some(budget) = budget {
        args.extend(["--mem-budget".to_string(), budget.to_string()]);
    }
    let mut command = match runner {
        // Inside a bounded job: `sandbox run --mem ..` with the fixtures and the directory bound.
        Some((memory, extra)) => {
            let deps = fixtures.parent().unwrap().display().to_string();
            let scratch = dir.path().display().to_string();
            let mut command = Command::new(env!("CARGO_BIN_EXE_sandbox"));
            command.args(["run", "--mem", memory, "--bind", &format!("{deps}:{deps}:ro"), "--bind", &format!("{scratch}:{scratch}")]);
            command.args(extra).arg("--").arg(&fixtures);
            command
        }
        None => Command::new(&fixtures),
    };
    let output = command.args(&args).env("SANDBOX_PROBE_DIR", dir.path()).output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let seen = |name: &str| -> usize { std::fs::read_to_string(dir.path().join(format!("seen-{name}"))).unwrap().parse().unwrap() };
    ((1..=6).map(|n| seen(&n.to_string())).collect(), seen("large"), out)
}

#[test]
fn a_memory_budget_holds_concurrency_down() {
    // Without a budget that binds, four at once.
    let (small, _, _) = budget_probes(None, Some("100G"));
    assert!(small.iter().max().unwrap() >= &3, "four threads ran at most {small:?} at once");

    // 250 MiB: two of the 100 MiB tests at a time; the 400 MiB one alone, with a note.
    let (small, large, out) = budget_probes(None, Some("250M"));
    assert_eq!(small.iter().max(), Some(&2), "running at each start: {small:?}\n{out}");
    assert_eq!(large, 1, "{out}");
    assert!(out.contains("test budget_probe_large ... ok (") && out.contains("ran alone: its mem 400.0 MiB is over the memory budget 250.0 MiB)"), "{out}");

    // By default the budget is the memory the runner may use: inside a job limited to 250 MiB,
    // the job's limit.
    let (small, large, out) = budget_probes(Some(("250M", &[])), None);
    assert_eq!(small.iter().max(), Some(&2), "running at each start: {small:?}\n{out}");
    assert_eq!(large, 1, "{out}");
    assert!(out.contains("over the memory budget 250.0 MiB)"), "{out}");

    // A test without `mem` counts as 64 MiB: under a smaller budget it runs alone, and its line
    // and the report say why.
    let dir = shared_scratch();
    let report = dir.path().join("report.json");
    let args = ["--exact", "probe_body_cpus", "--mem-budget", "32M", "--report", report.to_str().unwrap()];
    let (out, code) = run(&runner_fixtures(), &args, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ran alone: it counts as 64.0 MiB without `mem`, over the memory budget 32.0 MiB)"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let alone = &json["tests"][0]["ran_alone"];
    assert_eq!((alone["memory_bytes"].as_u64(), alone["declared"].as_bool()), (Some(64 << 20), Some(false)), "{json}");
    assert_eq!(alone["budget_bytes"].as_u64(), Some(32 << 20), "{json}");

    // A budget that is not a size: one message, nothing run.
    let (out, code) = run(&runner_fixtures(), &["budget_probe_", "--mem-budget", "lots"], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--mem-budget: invalid size 'lots'") && !out.contains("running"), "{out}");
}
