//! A runner for Prometheus's PromQL test scripts (the `*.test` files of
//! `promql/promqltest/testdata` at v3.5.3), evaluating them with promgate's engine.
//!
//! `parse` turns a script into commands, `compare` checks an answer against an eval's
//! expectations the way Prometheus's runner does, and `run` drives the engine and decides
//! what to skip.

pub mod compare;
pub mod parse;
pub mod run;

/// Label pairs sorted by name, `__name__` included.
pub type LabelPairs = Vec<(String, String)>;

/// One command of a script, with the 1-based line it starts on.
#[derive(Debug, Clone)]
pub enum Command {
    Load(Load),
    Clear,
    Eval(Box<Eval>),
}

#[derive(Debug, Clone)]
pub struct Load {
    /// `load_with_nhcb`: classic histograms are also converted to native ones, which this
    /// engine does not have; the float series still load.
    pub nhcb: bool,
    pub series: Vec<LoadSeries>,
}

#[derive(Debug, Clone)]
pub struct LoadSeries {
    pub labels: LabelPairs,
    pub samples: Vec<(i64, f64)>,
    /// The line holds native-histogram samples (`{{...}}`); nothing of it is loaded.
    pub histogram: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalKind {
    Instant {
        at_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

/// How an error or annotation text must look.
#[derive(Debug, Clone, PartialEq)]
pub enum TextMatch {
    Any,
    Exact(String),
    Regex(String),
}

/// What an eval expects besides its result lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    pub fail: Option<TextMatch>,
    pub warn: Option<TextMatch>,
    pub info: Option<TextMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
}

/// One expected series: labels and one value per step (`None` = `_`, no point).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedSeries {
    pub labels: LabelPairs,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// Series lines in the script's order (that order matters for ordered evals); none
    /// means an empty result.
    Series(Vec<ExpectedSeries>),
    Scalar(f64),
    String(String),
}

#[derive(Debug, Clone)]
pub struct Eval {
    pub line: usize,
    pub expr: String,
    pub kind: EvalKind,
    pub expect: Expectations,
    pub expected: Expected,
    /// A line of this eval the parser could not read: the eval is reported as failed with
    /// this message instead of being run.
    pub error: Option<String>,
    /// The expected lines hold native-histogram values.
    pub histogram_expected: bool,
}

#[cfg(test)]
mod tests;
