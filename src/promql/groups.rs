//! Per-replica-group query planning: which groups a query must reach, the query each of them
//! must receive, and whether concatenating their answers is the answer one Prometheus holding
//! every group's data would give.
//!
//! A group's external labels are invisible to its own PromQL engine, yet promgate presents them
//! as ordinary labels. Three rewrites close that gap, per group:
//!
//! * Matchers on the group's external labels are evaluated here, against the group's value. A
//!   matcher that holds is dropped; one that fails turns the selector into one that matches
//!   nothing (`__promgate_none__=~".^"`), which keeps the query valid and gives `absent` no
//!   label to derive. A selector left without any matcher that rejects the empty string gets
//!   `__name__=~".+"`, since PromQL refuses such selectors.
//! * The external labels are put into the data with `label_replace(v, "l", "value", "l", "")`
//!   (an empty regex on the label itself only sets it where the series lacks it), so the backend
//!   applies PromQL's own label rules (`by`, `on`, `label_replace`, …) to them. Instant vector
//!   selectors are wrapped directly; matrix selectors through the function consuming them;
//!   `timestamp(sel)` through the call, because wrapping its argument would turn sample
//!   timestamps into evaluation timestamps; `absent(sel)` and `absent_over_time(sel[..])`
//!   through the call and only with the labels absent would have derived from equality
//!   matchers on external labels. A top-level matrix selector cannot be wrapped:
//!   [`GroupPlan::attach_external_labels`] tells the caller to attach the labels itself.
//! * Exactness: concatenating per-group results is exact only when no output series could
//!   combine data from two groups. Every output series must keep all labels whose external
//!   values differ between the relevant groups (the set D below), with its group's values;
//!   then series from different groups stay distinct and no operator mixes them. The check
//!   walks the AST and answers "not exact" for anything it does not know to preserve D.
//!
//! Labels that are not external labels of a group are never touched for that group: its
//! backend evaluates them against the series' own labels, as one Prometheus would. Series that
//! carry a label with the name of one of their group's external labels keep their own value
//! (Prometheus's rule for external labels), but matchers on that name are still evaluated
//! against the external value.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::{METRIC_NAME, MatchOp, Matcher, Matchers};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, Function, FunctionArgs, LabelModifier, ParenExpr,
    StringLiteral, SubqueryExpr, UnaryExpr, VectorSelector,
};
use regex::Regex;

use super::ast_json::to_promql;

/// External labels of one replica group, replica labels already removed.
pub type ExternalLabels = BTreeMap<String, String>;

/// Label of the matcher that makes a selector match nothing in a group.
pub const NONE_LABEL: &str = "__promgate_none__";
/// A regex that matches no string, not even the empty one.
pub const NONE_REGEX: &str = ".^";

/// The queries to send for one expression, and how to combine their answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    /// Whether concatenating the per-group results is the exact answer.
    pub exactness: Exactness,
    /// One query per relevant group, in group order.
    pub queries: Vec<GroupQuery>,
    /// The order the caller must give the concatenated result.
    pub order: ResultOrder,
    /// The caller must add each group's external labels to its result series (where
    /// absent): the expression is a matrix selector at the top, which cannot carry injected
    /// labels, or it keeps every series' labels as they are (a selector, `rate(x[5m])`,
    /// `x * 2`), where attaching them afterwards gives the same answer and spares the
    /// backend the `label_replace` work.
    pub attach_external_labels: bool,
}

/// The query one group's backend must evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupQuery {
    /// Index into the group slice given to [`plan_groups`].
    pub group: usize,
    /// The query text, valid PromQL.
    pub query: String,
    /// False when the query is the input expression unchanged, so the caller may send the
    /// user's original text instead of `query`.
    pub rewritten: bool,
}

/// Whether the concatenation of per-group answers is the answer of one merged Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exactness {
    /// Exact: at most one group is asked, or no output series can mix groups.
    Exact,
    /// Some output series would combine data of several groups (an aggregation across them,
    /// `absent`, `scalar`, …); the per-group answers are correct per group only.
    NotMergedAcrossGroups,
}

/// Order of the series in the combined result of an instant query. Range query results are
/// always ordered by labels: Prometheus ignores the sort functions there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultOrder {
    /// By label set, as Prometheus orders results without an explicit sort.
    Labels,
    /// `sort(...)`: by sample value, ascending.
    ValueAscending,
    /// `sort_desc(...)`: by sample value, descending.
    ValueDescending,
    /// `sort_by_label(...)` / `sort_by_label_desc(...)`: by the values of these labels.
    ByLabels {
        names: Vec<String>,
        descending: bool,
    },
}

/// The match[] selectors one group's backend must receive (see [`plan_match_selectors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSelectors {
    /// Index into the group slice.
    pub group: usize,
    /// The rewritten selectors that can match in this group, never empty.
    pub selectors: Vec<String>,
}

/// Plans `expr` over replica groups with the given external labels.
///
/// A group is asked when at least one selector of `expr` can match in it. When none can, or
/// `expr` has no selector at all, group 0 alone is asked so the expression is still evaluated
/// exactly once. With no groups, no query is planned.
pub fn plan_groups(expr: &Expr, groups: &[&ExternalLabels]) -> GroupPlan {
    let order = result_order(expr);
    let attach_external_labels =
        matches!(unwrap_parens(expr), Expr::MatrixSelector(_)) || keeps_labels(expr);
    let inject = !attach_external_labels;
    let rewrites: Vec<GroupRewrite> = groups
        .iter()
        .map(|g| rewrite_for_group(expr, g, inject))
        .collect();
    let relevant: Vec<usize> = (0..groups.len())
        .filter(|&i| rewrites[i].can_match)
        .collect();

    let chosen = if relevant.is_empty() {
        if groups.is_empty() { vec![] } else { vec![0] }
    } else {
        relevant
    };
    let exactness = if chosen.len() <= 1 {
        Exactness::Exact
    } else {
        let exts: Vec<&ExternalLabels> = chosen.iter().map(|&i| groups[i]).collect();
        exactness_across(expr, &exts)
    };
    let queries = chosen
        .into_iter()
        .map(|i| GroupQuery {
            group: i,
            query: rewrites[i].query.clone(),
            rewritten: rewrites[i].rewritten,
        })
        .collect();
    GroupPlan {
        exactness,
        queries,
        order,
        attach_external_labels,
    }
}

/// The selector as a group's backend must receive it for /api/v1/series, labels and label
/// values, or `None` when it cannot match in that group. No labels are injected: the caller
/// adds the group's external labels to what comes back.
pub fn rewrite_selector_for_group(sel: &VectorSelector, ext: &ExternalLabels) -> Option<String> {
    let r = rewrite_selector(sel, ext);
    r.can_match
        .then(|| to_promql(&Expr::VectorSelector(r.selector)))
}

/// For a list of match[] selectors: the groups where at least one can match, each with the
/// rewritten selectors that can. An empty list of selectors yields no group; endpoints where
/// match[] is optional must treat that case as "every group".
pub fn plan_match_selectors(
    sels: &[VectorSelector],
    groups: &[&ExternalLabels],
) -> Vec<GroupSelectors> {
    groups
        .iter()
        .enumerate()
        .filter_map(|(group, ext)| {
            let selectors: Vec<String> = sels
                .iter()
                .filter_map(|s| rewrite_selector_for_group(s, ext))
                .collect();
            (!selectors.is_empty()).then_some(GroupSelectors { group, selectors })
        })
        .collect()
}

/// Parses one match[] parameter, which must be an instant vector selector.
pub fn parse_match_selector(s: &str) -> Result<VectorSelector, String> {
    match super::parse(s)? {
        Expr::VectorSelector(vs) => Ok(vs),
        other => Err(format!(
            "match[] must be a vector selector, got {}",
            other.value_type()
        )),
    }
}

// === selector rewriting ===

struct SelectorRewrite {
    selector: VectorSelector,
    can_match: bool,
    changed: bool,
}

/// One conjunction of matchers after evaluating its external-label matchers.
enum Conjunction {
    Kept {
        matchers: Vec<Matcher>,
        changed: bool,
    },
    Never {
        others: Vec<Matcher>,
    },
}

fn is_external(m: &Matcher, ext: &ExternalLabels) -> bool {
    m.name != METRIC_NAME && ext.contains_key(&m.name)
}

fn eval_conjunction(ms: &[Matcher], ext: &ExternalLabels) -> Conjunction {
    let others: Vec<Matcher> = ms
        .iter()
        .filter(|m| !is_external(m, ext))
        .cloned()
        .collect();
    let mut changed = false;
    for m in ms.iter().filter(|m| is_external(m, ext)) {
        changed = true;
        if !matcher_accepts(m, &ext[&m.name]) {
            return Conjunction::Never { others };
        }
    }
    Conjunction::Kept {
        matchers: others,
        changed,
    }
}

/// Whether `m` accepts `value`, with Prometheus's regex semantics: fully anchored, and `.`
/// matching a newline too (Prometheus compiles `^(?s:re)$`).
fn matcher_accepts(m: &Matcher, value: &str) -> bool {
    let (re, negate) = match &m.op {
        MatchOp::Re(re) => (re, false),
        MatchOp::NotRe(re) => (re, true),
        MatchOp::Equal | MatchOp::NotEqual => return m.is_match(value),
    };
    // The parser compiled `^(?:re)$`, with Go-only syntax already made acceptable.
    let inner = re
        .as_str()
        .strip_prefix("^(?:")
        .and_then(|r| r.strip_suffix(")$"));
    let hit = match inner.map(|r| Regex::new(&format!("^(?s:{r})$"))) {
        Some(Ok(dot_nl)) => dot_nl.is_match(value),
        _ => re.is_match(value),
    };
    hit != negate
}

fn none_matcher() -> Matcher {
    let re = Regex::new(&format!("^(?:{NONE_REGEX})$")).expect("constant regex compiles");
    Matcher::new(MatchOp::Re(re), NONE_LABEL, NONE_REGEX)
}

fn any_name_matcher() -> Matcher {
    let re = Regex::new("^(?:.+)$").expect("constant regex compiles");
    Matcher::new(MatchOp::Re(re), METRIC_NAME, ".+")
}

/// Adds `__name__=~".+"` when nothing in the conjunction rejects the empty string.
fn guard_empty(has_name: bool, mut ms: Vec<Matcher>) -> Vec<Matcher> {
    if !has_name && ms.iter().all(|m| m.is_match("")) {
        ms.push(any_name_matcher());
    }
    ms
}

fn rewrite_selector(vs: &VectorSelector, ext: &ExternalLabels) -> SelectorRewrite {
    let has_name = vs.name.is_some();
    let mut selector = vs.clone();
    if vs.matchers.or_matchers.is_empty() {
        return match eval_conjunction(&vs.matchers.matchers, ext) {
            Conjunction::Kept { matchers, changed } => {
                if changed {
                    selector.matchers = Matchers::new(guard_empty(has_name, matchers));
                }
                SelectorRewrite {
                    selector,
                    can_match: true,
                    changed,
                }
            }
            Conjunction::Never { mut others } => {
                others.push(none_matcher());
                selector.matchers = Matchers::new(others);
                SelectorRewrite {
                    selector,
                    can_match: false,
                    changed: true,
                }
            }
        };
    }
    // `a="1" or b="2"` alternatives: drop those that cannot match here.
    let mut kept = Vec::new();
    let mut changed = false;
    for alt in &vs.matchers.or_matchers {
        match eval_conjunction(alt, ext) {
            Conjunction::Kept {
                matchers,
                changed: c,
            } => {
                changed |= c;
                kept.push(if c {
                    guard_empty(has_name, matchers)
                } else {
                    matchers
                });
            }
            Conjunction::Never { .. } => changed = true,
        }
    }
    let can_match = !kept.is_empty();
    if changed {
        selector.matchers = match kept.len() {
            0 => Matchers::new(vec![none_matcher()]),
            1 => Matchers::new(kept.pop().unwrap_or_default()),
            _ => Matchers::empty().with_or_matchers(kept),
        };
    }
    SelectorRewrite {
        selector,
        can_match,
        changed,
    }
}

// === label-keeping expressions ===

/// Whether every output series of `e` has exactly the labels of one input series (minus
/// `__name__`, or `le` for a classic histogram's quantile), so the external labels can be
/// attached to the answer instead of injected: the per-series functions keep them whatever
/// they are.
fn keeps_labels(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => true,
        Expr::Paren(p) => keeps_labels(&p.expr),
        Expr::Unary(u) => keeps_labels(&u.expr),
        Expr::Subquery(s) => keeps_labels(&s.expr),
        Expr::Call(c) => {
            PER_SERIES_FUNCTIONS.contains(&c.func.name)
                && c.args.args.iter().any(|a| has_series(a))
                && c.args
                    .args
                    .iter()
                    .all(|a| !has_series(a) || keeps_labels(a))
        }
        // A vector with a number: the vector's labels go through (comparisons filter).
        Expr::Binary(b) => match (has_series(&b.lhs), has_series(&b.rhs)) {
            (true, false) => keeps_labels(&b.lhs) && is_number(&b.rhs),
            (false, true) => keeps_labels(&b.rhs) && is_number(&b.lhs),
            _ => false,
        },
        _ => false,
    }
}

fn has_series(e: &Expr) -> bool {
    matches!(e.value_type(), ValueType::Vector | ValueType::Matrix)
}

fn is_number(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_number(&p.expr),
        Expr::Unary(u) => is_number(&u.expr),
        _ => false,
    }
}

// === expression rewriting ===

struct GroupRewrite {
    query: String,
    rewritten: bool,
    can_match: bool,
}

fn rewrite_for_group(expr: &Expr, ext: &ExternalLabels, inject: bool) -> GroupRewrite {
    let mut rw = Rewriter {
        ext,
        inject,
        changed: false,
        can_match: false,
    };
    let out = rw.expr(expr);
    GroupRewrite {
        query: to_promql(&out),
        rewritten: rw.changed,
        can_match: rw.can_match,
    }
}

struct Rewriter<'a> {
    ext: &'a ExternalLabels,
    /// Inject the labels with `label_replace`; otherwise only matchers are rewritten and the
    /// caller attaches the labels to the answer.
    inject: bool,
    changed: bool,
    /// At least one selector can match in this group.
    can_match: bool,
}

/// `expr` rewritten for one group with the labels left for the caller to attach (matchers
/// on external labels evaluated and removed), and whether any selector can match there.
pub(crate) fn rewrite_for_group_text(expr: &Expr, ext: &ExternalLabels) -> (String, bool) {
    let rw = rewrite_for_group(expr, ext, false);
    (rw.query, rw.can_match)
}

/// Whether every series of `expr` is computed from series of one group only: selectors and
/// per-series functions, with numbers.
pub(crate) fn group_local(expr: &Expr) -> bool {
    keeps_labels(expr)
}

fn label_replace(inner: Expr, name: &str, value: &str) -> Expr {
    let s = |v: &str| Box::new(Expr::StringLiteral(StringLiteral { val: v.to_string() }));
    let func = Function::new(
        "label_replace",
        vec![
            ValueType::Vector,
            ValueType::String,
            ValueType::String,
            ValueType::String,
            ValueType::String,
        ],
        0,
        ValueType::Vector,
        false,
    );
    Expr::Call(Call {
        func,
        args: FunctionArgs {
            args: vec![Box::new(inner), s(name), s(value), s(name), s("")],
        },
    })
}

fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        other => other,
    }
}

/// The labels Prometheus's `absent` derives from a selector, restricted to `names`: the first
/// equality matcher of a name sets it, any further matcher of that name removes it again.
fn absent_labels<'m>(
    ms: &'m [Matcher],
    names: &ExternalLabels,
) -> BTreeMap<&'m str, Option<&'m str>> {
    let mut out: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for m in ms.iter().filter(|m| is_external(m, names)) {
        let seen = out.contains_key(m.name.as_str());
        let v = (m.op == MatchOp::Equal && !seen).then_some(m.value.as_str());
        out.insert(&m.name, v);
    }
    out
}

impl Rewriter<'_> {
    fn selector(&mut self, vs: &VectorSelector) -> VectorSelector {
        let r = rewrite_selector(vs, self.ext);
        self.changed |= r.changed;
        self.can_match |= r.can_match;
        r.selector
    }

    fn wrap(&mut self, mut e: Expr) -> Expr {
        if !self.inject {
            return e;
        }
        for (name, value) in self.ext {
            self.changed = true;
            e = label_replace(e, name, value);
        }
        e
    }

    fn boxed(&mut self, e: &Expr) -> Box<Expr> {
        Box::new(self.expr(e))
    }

    fn expr(&mut self, e: &Expr) -> Expr {
        match e {
            Expr::VectorSelector(vs) => {
                let vs = self.selector(vs);
                self.wrap(Expr::VectorSelector(vs))
            }
            Expr::MatrixSelector(ms) => {
                let mut ms = ms.clone();
                ms.vs = self.selector(&ms.vs);
                Expr::MatrixSelector(ms)
            }
            Expr::Call(c) => self.call(c),
            Expr::Aggregate(a) => Expr::Aggregate(AggregateExpr {
                op: a.op,
                expr: self.boxed(&a.expr),
                param: a.param.as_ref().map(|p| self.boxed(p)),
                modifier: a.modifier.clone(),
            }),
            Expr::Binary(b) => Expr::Binary(BinaryExpr {
                op: b.op,
                lhs: self.boxed(&b.lhs),
                rhs: self.boxed(&b.rhs),
                modifier: b.modifier.clone(),
            }),
            Expr::Paren(p) => Expr::Paren(ParenExpr {
                expr: self.boxed(&p.expr),
            }),
            Expr::Unary(u) => Expr::Unary(UnaryExpr {
                expr: self.boxed(&u.expr),
            }),
            Expr::Subquery(s) => Expr::Subquery(SubqueryExpr {
                expr: self.boxed(&s.expr),
                ..s.clone()
            }),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => e.clone(),
        }
    }

    /// Rewrites the selector inside `arg` (through parentheses) without wrapping it.
    fn bare_selector(&mut self, arg: &Expr) -> Option<Expr> {
        match arg {
            Expr::Paren(p) => Some(Expr::Paren(ParenExpr {
                expr: Box::new(self.bare_selector(&p.expr)?),
            })),
            Expr::VectorSelector(vs) => Some(Expr::VectorSelector(self.selector(vs))),
            _ => None,
        }
    }

    fn call(&mut self, c: &Call) -> Expr {
        let name = c.func.name;
        let first = c.args.args.first().map(|a| a.as_ref());
        match (name, first) {
            ("absent", Some(Expr::VectorSelector(vs))) => {
                let inner = Expr::VectorSelector(self.selector(vs));
                self.absent_call(c, inner, &vs.matchers.matchers)
            }
            ("absent_over_time", Some(Expr::MatrixSelector(ms))) => {
                let inner = self.expr(&Expr::MatrixSelector(ms.clone()));
                self.absent_call(c, inner, &ms.vs.matchers.matchers)
            }
            ("timestamp", Some(arg)) => match self.bare_selector(arg) {
                Some(inner) => {
                    let call = with_args(c, vec![inner]);
                    self.wrap(call)
                }
                None => self.generic_call(c),
            },
            ("info", Some(arg)) => {
                // The second argument selects info series by their data labels: not a
                // selector of the queried data, so it is passed on untouched.
                let mut args = vec![self.expr(arg)];
                args.extend(c.args.args.iter().skip(1).map(|a| a.as_ref().clone()));
                with_args(c, args)
            }
            _ => self.generic_call(c),
        }
    }

    fn generic_call(&mut self, c: &Call) -> Expr {
        let args: Vec<Expr> = c.args.args.iter().map(|a| self.expr(a)).collect();
        let call = with_args(c, args);
        let takes_matrix_selector = c
            .args
            .args
            .iter()
            .any(|a| matches!(unwrap_parens(a), Expr::MatrixSelector(_)));
        if takes_matrix_selector {
            self.wrap(call)
        } else {
            call
        }
    }

    fn absent_call(&mut self, c: &Call, inner: Expr, original: &[Matcher]) -> Expr {
        let mut out = with_args(c, vec![inner]);
        for (name, value) in absent_labels(original, self.ext) {
            if let Some(value) = value {
                self.changed = true;
                out = label_replace(out, name, value);
            }
        }
        out
    }
}

fn with_args(c: &Call, args: Vec<Expr>) -> Expr {
    Expr::Call(Call {
        func: c.func.clone(),
        args: FunctionArgs {
            args: args.into_iter().map(Box::new).collect(),
        },
    })
}

// === result order ===

fn result_order(expr: &Expr) -> ResultOrder {
    let Expr::Call(c) = unwrap_parens(expr) else {
        return ResultOrder::Labels;
    };
    let label_args = || -> Vec<String> {
        c.args
            .args
            .iter()
            .skip(1)
            .filter_map(|a| match a.as_ref() {
                Expr::StringLiteral(s) => Some(s.val.clone()),
                _ => None,
            })
            .collect()
    };
    match c.func.name {
        "sort" => ResultOrder::ValueAscending,
        "sort_desc" => ResultOrder::ValueDescending,
        "sort_by_label" => ResultOrder::ByLabels {
            names: label_args(),
            descending: false,
        },
        "sort_by_label_desc" => ResultOrder::ByLabels {
            names: label_args(),
            descending: true,
        },
        _ => ResultOrder::Labels,
    }
}

// === exactness ===

/// Exactness of concatenating the answers of several groups (at least two).
fn exactness_across(expr: &Expr, exts: &[&ExternalLabels]) -> Exactness {
    // Groups with equal external labels produce series that cannot be told apart.
    let distinct: BTreeSet<&ExternalLabels> = exts.iter().copied().collect();
    if distinct.len() < exts.len() {
        return Exactness::NotMergedAcrossGroups;
    }
    let names: BTreeSet<&str> = exts
        .iter()
        .flat_map(|e| e.keys().map(String::as_str))
        .collect();
    fn value<'e>(e: &'e ExternalLabels, n: &str) -> &'e str {
        e.get(n).map(String::as_str).unwrap_or("")
    }
    let differing: BTreeSet<String> = names
        .into_iter()
        .filter(|n| exts.iter().any(|e| value(e, n) != value(exts[0], n)))
        .map(str::to_string)
        .collect();
    match LabelKeeping::walk(expr, &differing) {
        Some(_) => Exactness::Exact,
        None => Exactness::NotMergedAcrossGroups,
    }
}

/// Functions whose output series each come from one input series (or one `le` bucket set of
/// one series family) and keep its labels other than `__name__`.
const PER_SERIES_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "double_exponential_smoothing",
    "exp",
    "first_over_time",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "hour",
    "idelta",
    "increase",
    "irate",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "timestamp",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "year",
];

/// Scalar functions of the evaluation time only.
const TIME_ONLY_SCALAR_FUNCTIONS: &[&str] = &["time", "pi"];

/// The AST walk deciding exactness.
struct LabelKeeping;

impl LabelKeeping {
    /// `Some(has_vector_data)` when every output series of `e` keeps all labels in `d` with
    /// its own group's values (scalars and strings: when they do not depend on group data),
    /// `None` when that is not known.
    fn walk(e: &Expr, d: &BTreeSet<String>) -> Option<bool> {
        match e {
            Expr::VectorSelector(_) | Expr::MatrixSelector(_) => Some(true),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Some(false),
            Expr::Paren(p) => Self::walk(&p.expr, d),
            Expr::Unary(u) => Self::walk(&u.expr, d),
            Expr::Subquery(s) => Self::walk(&s.expr, d),
            Expr::Aggregate(a) => Self::aggregate(a, d),
            Expr::Binary(b) => Self::binary(b, d),
            Expr::Call(c) => Self::call(c, d),
            Expr::Extension(_) => None,
        }
    }

    fn keeps_all(modifier: &LabelModifier, d: &BTreeSet<String>) -> bool {
        match modifier {
            LabelModifier::Include(l) => d.iter().all(|n| l.labels.contains(n)),
            LabelModifier::Exclude(l) => !l.labels.iter().any(|n| d.contains(n)),
        }
    }

    fn aggregate(a: &AggregateExpr, d: &BTreeSet<String>) -> Option<bool> {
        let grouping_ok = match &a.modifier {
            Some(m) => Self::keeps_all(m, d),
            None => d.is_empty(),
        };
        if !grouping_ok {
            return None;
        }
        match a.param.as_deref() {
            // count_values writes the value into this label, replacing the group's value.
            Some(Expr::StringLiteral(s)) if d.contains(&s.val) => return None,
            Some(Expr::StringLiteral(_)) | None => {}
            Some(p) => {
                if Self::walk(p, d)? {
                    return None;
                }
            }
        }
        Self::walk(&a.expr, d)?;
        Some(true)
    }

    fn binary(b: &BinaryExpr, d: &BTreeSet<String>) -> Option<bool> {
        let lhs = Self::walk(&b.lhs, d)?;
        let rhs = Self::walk(&b.rhs, d)?;
        let lt = b.lhs.value_type();
        let rt = b.rhs.value_type();
        match (lt, rt) {
            (ValueType::Vector, ValueType::Vector) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                match matching {
                    Some(m) if !Self::keeps_all(m, d) => None,
                    _ => Some(true),
                }
            }
            (ValueType::Vector, _) => (!rhs).then_some(true),
            (_, ValueType::Vector) => (!lhs).then_some(true),
            _ => Some(lhs || rhs),
        }
    }

    fn call(c: &Call, d: &BTreeSet<String>) -> Option<bool> {
        let name = c.func.name;
        let args = &c.args.args;
        if TIME_ONLY_SCALAR_FUNCTIONS.contains(&name) {
            return args.is_empty().then_some(false);
        }
        if matches!(name, "label_replace" | "label_join") {
            let dst = match args.get(1).map(|a| a.as_ref()) {
                Some(Expr::StringLiteral(s)) => &s.val,
                _ => return None,
            };
            if d.contains(dst) {
                return None;
            }
            return Self::walk(args.first()?, d);
        }
        // Without arguments the date functions read vector(time()), one series per group.
        if !PER_SERIES_FUNCTIONS.contains(&name) || args.is_empty() {
            return None;
        }
        let mut data = false;
        for arg in args {
            let has = Self::walk(arg, d)?;
            match arg.value_type() {
                ValueType::Vector | ValueType::Matrix => data |= has,
                // A scalar computed from one group's data differs per group.
                ValueType::Scalar if has => return None,
                ValueType::Scalar | ValueType::String => {}
            }
        }
        data.then_some(true)
    }
}

#[cfg(test)]
mod tests;
