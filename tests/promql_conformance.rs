//! Runs Prometheus's PromQL test scripts (v3.5.3) against promgate's engine and prints, per
//! file, how many evals passed, failed and were skipped (with why), plus the first failures.
//!
//! The scripts are read from `../shared/conformance/promql-testdata/` next to the
//! repository, never copied into it. When that directory does not exist the test prints
//! that it is missing and passes without checking anything.
//!
//! Nothing is asserted about the pass count except for the files in [`MUST_PASS`], which
//! must pass completely (skipped evals aside).
//!
//! `PROMQL_SCRIPT=<file>[:<line>]` runs one file (`functions` or `functions.test`), or only
//! the eval on that line, and prints every failure with what the engine returned:
//!
//! ```text
//! PROMQL_SCRIPT=functions.test:120 cargo test --test promql_conformance -- --nocapture
//! ```

mod promql_scripts;

use std::path::{Path, PathBuf};

use promql_scripts::run::{FileReport, Outcome, RunFilter, load_index, run_file};

/// Files every eval of which (skips aside) must pass; add a file once the engine passes it.
const MUST_PASS: &[&str] = &[
    "aggregators.test",
    "at_modifier.test",
    "collision.test",
    "functions.test",
    "histograms.test",
    "literals.test",
    "operators.test",
    "range_queries.test",
    "selectors.test",
    "staleness.test",
    "subquery.test",
    "trig_functions.test",
];

/// Failures printed per file in the overview.
const FAILURES_SHOWN: usize = 5;

fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/promql-testdata")
}

#[test]
fn promql_test_scripts() {
    let dir = testdata_dir();
    if !dir.is_dir() {
        println!(
            "PromQL test scripts missing at {}: nothing checked",
            dir.display()
        );
        return;
    }
    let index = load_index(&dir.join("EVAL-INDEX.tsv"));
    let selected = std::env::var("PROMQL_SCRIPT").ok();
    let (only_file, filter) = match selected.as_deref() {
        Some(sel) => {
            let (file, line) = match sel.rsplit_once(':') {
                Some((f, l)) => (f, l.parse::<usize>().ok()),
                None => (sel, None),
            };
            let file = if file.ends_with(".test") {
                file.to_string()
            } else {
                format!("{file}.test")
            };
            (
                Some(file),
                RunFilter {
                    line,
                    verbose: true,
                },
            )
        }
        None => (None, RunFilter::default()),
    };

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "test"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut reports = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if only_file.as_ref().is_some_and(|f| *f != name) {
            continue;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                println!("{name}: cannot read: {e}");
                continue;
            }
        };
        reports.push(runtime.block_on(run_file(&name, &text, &index, filter)));
    }
    if let Some(f) = &only_file {
        if reports.is_empty() {
            println!("PROMQL_SCRIPT: no file {f} in {}", dir.display());
        }
    }

    print_table(&reports, filter.verbose);

    let mut broken = Vec::new();
    for must in MUST_PASS {
        match reports.iter().find(|r| r.name == *must) {
            Some(r) if r.failed() > 0 || !r.script_errors.is_empty() => broken.push(format!(
                "{must}: {} failed, {} script errors",
                r.failed(),
                r.script_errors.len()
            )),
            _ => {}
        }
    }
    assert!(broken.is_empty(), "files in MUST_PASS fail: {broken:?}");
}

fn print_table(reports: &[FileReport], verbose: bool) {
    println!(
        "\n{:<28} {:>6} {:>6} {:>6} {:>7}",
        "file", "evals", "passed", "failed", "skipped"
    );
    let (mut p, mut f, mut s) = (0, 0, 0);
    for r in reports {
        println!(
            "{:<28} {:>6} {:>6} {:>6} {:>7}",
            r.name,
            r.evals.len(),
            r.passed(),
            r.failed(),
            r.skipped()
        );
        p += r.passed();
        f += r.failed();
        s += r.skipped();
    }
    println!(
        "{:<28} {:>6} {:>6} {:>6} {:>7}\n",
        "total",
        p + f + s,
        p,
        f,
        s
    );

    for r in reports {
        let reasons = r.skip_reasons();
        let failures: Vec<_> = r
            .evals
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Fail(_)))
            .collect();
        if reasons.is_empty() && failures.is_empty() && r.script_errors.is_empty() && !verbose {
            continue;
        }
        println!("== {}", r.name);
        for (reason, n) in &reasons {
            println!("   skipped {n:>4}: {reason}");
        }
        for (line, e) in &r.script_errors {
            println!("   script error, line {line}: {e}");
        }
        if verbose {
            // One file or one eval: everything, in script order, with what came back.
            for e in &r.evals {
                match &e.outcome {
                    Outcome::Pass => println!("   pass line {}: {}", e.line, e.expr),
                    Outcome::Skip(why) => println!("   skip line {} ({why}): {}", e.line, e.expr),
                    Outcome::Fail(why) => {
                        println!("   FAIL line {}: {}", e.line, e.expr);
                        println!("        {}", shorten(why, 4000));
                    }
                }
                if let Some(d) = &e.detail {
                    println!("        returned: {}", shorten(d, 4000));
                }
            }
            continue;
        }
        for e in failures.iter().take(FAILURES_SHOWN) {
            if let Outcome::Fail(why) = &e.outcome {
                println!("   FAIL line {}: {}", e.line, e.expr);
                println!("        {}", shorten(why, 240));
            }
        }
        if failures.len() > FAILURES_SHOWN {
            println!(
                "   ... and {} more failures",
                failures.len() - FAILURES_SHOWN
            );
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}
