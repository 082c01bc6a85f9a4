//! Everything the runner prints, in libtest's format: a line per test as it ends (with the
//! resources it used), the failures' output and reasons, and the summary.

use std::io::Write;

use super::Conclusion;
use crate::testing::fork_server::TestResult;
use crate::testing::Verdict;
use crate::units::format_bytes;

/// libtest's pretty (default) or terse format.
pub(super) struct Printer {
    pub terse: bool,
}

impl Printer {
    /// `--list`: one line per test, then (not terse) the count.
    pub fn list(&self, names: &[String]) {
        for name in names {
            println!("{name}: test");
        }
        if !self.terse {
            println!("\n{} tests, 0 benchmarks", names.len());
        }
    }

    pub fn start(&self, tests: usize) {
        println!("\nrunning {tests} test{}", if tests == 1 { "" } else { "s" });
    }

    /// One test's line, as it ends.
    pub fn test(&self, result: &TestResult) {
        let mut stdout = std::io::stdout().lock();
        let mut notes: Vec<String> = result.resources.iter().map(|r| r.to_string()).collect();
        notes.extend(result.baseline.as_ref().map(|check| check.note()));
        notes.extend(result.ran_alone.map(|alone| {
            let (memory, budget) = (format_bytes(alone.memory_bytes), format_bytes(alone.budget_bytes));
            if alone.declared {
                format!("ran alone: its mem {memory} is over the memory budget {budget}")
            } else {
                format!("ran alone: it counts as {memory} without `mem`, over the memory budget {budget}")
            }
        }));
        let resources = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
        let _ = match (&result.verdict, self.terse) {
            (Verdict::Passed, false) => writeln!(stdout, "test {} ... ok{resources}", result.name),
            (Verdict::Failed(_), false) => writeln!(stdout, "test {} ... FAILED{resources}", result.name),
            (Verdict::Ignored, false) => writeln!(stdout, "test {} ... ignored", result.name),
            (Verdict::Passed, true) => write!(stdout, "."),
            (Verdict::Failed(_), true) => write!(stdout, "F"),
            (Verdict::Ignored, true) => write!(stdout, "i"),
        };
        let _ = stdout.flush();
    }

    /// The failures (output, then reason) and libtest's summary line.
    pub fn conclusion(&self, conclusion: &Conclusion) {
        if self.terse {
            println!();
        }
        let failed: Vec<&TestResult> =
            conclusion.results.iter().filter(|result| matches!(result.verdict, Verdict::Failed(_))).collect();
        if !failed.is_empty() {
            println!("\nfailures:\n");
            for result in &failed {
                println!("---- {} ----", result.name);
                print!("{}", result.output);
                if let Verdict::Failed(failure) = &result.verdict {
                    println!("{failure}\n");
                }
            }
            println!("failures:");
            for result in &failed {
                println!("    {}", result.name);
            }
        }
        println!(
            "\ntest result: {}. {} passed; {} failed; {} ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
            if failed.is_empty() { "ok" } else { "FAILED" },
            conclusion.count(|v| matches!(v, Verdict::Passed)),
            failed.len(),
            conclusion.count(|v| matches!(v, Verdict::Ignored)),
            conclusion.filtered_out,
            conclusion.elapsed.as_secs_f64()
        );
    }
}
