//! Planning a query over replica groups.
//!
//! Each group's backends hold series without the group's external labels, and their PromQL
//! engines never see those labels; promgate must answer as if one Prometheus held every
//! group's data with the external labels as ordinary labels. Three rewrites make a group's
//! own engine do that:
//!
//! * A matcher on an external label is evaluated by promgate against the group's value and
//!   removed; a selector it excludes is made to match nothing (`__promgate_none__=~".^"`),
//!   and a group none of whose selectors can match is not asked at all.
//! * The labels are injected into the data: `label_replace(sel, "cluster", "eu1", "cluster",
//!   "")` sets `cluster` on every series that lacks it, so aggregations, joins and label
//!   functions treat it exactly as an ordinary label. Functions over range vectors are wrapped
//!   whole (their output keeps the input's labels), and so is `timestamp(sel)`, which
//!   Prometheus evaluates specially on a bare selector. `absent` derives its output labels
//!   from the selector's equality matchers, so the removed ones are added back around it.
//! * Where several groups are relevant, the concatenation of their answers is exact only if
//!   no output series can combine series of two groups: every aggregation and vector
//!   matching must keep the labels that tell the groups apart. Otherwise the plan says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, Function, FunctionArgs, LabelModifier, MatrixSelector,
    ParenExpr, StringLiteral, SubqueryExpr, UnaryExpr, VectorSelector,
};

/// External labels of a replica group, by name (replica labels already removed).
pub type ExternalLabels = BTreeMap<String, String>;

/// A label no series has: a selector excluded by an external-label matcher gets a matcher on
/// it that cannot match, so it stays valid PromQL and selects nothing.
const NONE_LABEL: &str = "__promgate_none__";
const NONE_REGEX: &str = ".^";

/// How a query is answered by the groups.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub exactness: Exactness,
    /// One query per group to ask, by index into the groups given to [`plan_groups`].
    pub queries: Vec<GroupQuery>,
    /// How a concatenation of several groups' instant vectors must be ordered.
    pub order: ResultOrder,
    /// The result is a range vector straight from selectors (an instant query of `x[5m]`),
    /// which cannot carry injected labels: the caller adds each group's labels itself.
    pub attach_external_labels: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupQuery {
    pub group: usize,
    pub query: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exactness {
    /// The groups' answers together are the answer.
    Exact,
    /// Some output series would combine several groups' data; concatenating per-group
    /// answers is not the answer.
    NotMergedAcrossGroups,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultOrder {
    Labels,
    ValueAscending,
    ValueDescending,
    ByLabels {
        names: Vec<String>,
        descending: bool,
    },
}

/// Plans `expr` over `groups`.
pub fn plan_groups(expr: &Expr, groups: &[&ExternalLabels]) -> GroupPlan {
    let mut selectors = Vec::new();
    collect_selectors(expr, &mut selectors);
    let mut relevant: Vec<usize> = (0..groups.len())
        .filter(|&g| selectors.iter().any(|vs| can_match(vs, groups[g])))
        .collect();
    if relevant.is_empty() && !groups.is_empty() {
        // Nothing to select anywhere (or no selectors at all): evaluate once.
        relevant.push(0);
    }
    let exactness = if relevant.len() <= 1 {
        Exactness::Exact
    } else {
        let distinguishing = distinguishing_labels(relevant.iter().map(|&g| groups[g]));
        if separable(expr, &distinguishing) {
            Exactness::Exact
        } else {
            Exactness::NotMergedAcrossGroups
        }
    };
    let queries = relevant
        .iter()
        .map(|&g| GroupQuery {
            group: g,
            query: Rewriter { ext: groups[g] }.expr(expr).to_string(),
        })
        .collect();
    let top = unwrap_parens(expr);
    let attach_external_labels = matches!(top, Expr::MatrixSelector(_) | Expr::Subquery(_));
    GroupPlan {
        exactness,
        queries,
        order: result_order(top),
        attach_external_labels,
    }
}

/// The selector as a group's backends must receive it for `match[]`, or `None` when it
/// cannot match in that group.
pub fn rewrite_selector_for_group(sel: &VectorSelector, ext: &ExternalLabels) -> Option<String> {
    let rewrite = rewrite_selector(sel, ext);
    rewrite
        .matches
        .then(|| Expr::VectorSelector(rewrite.selector).to_string())
}

fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn result_order(top: &Expr) -> ResultOrder {
    let Expr::Call(call) = top else {
        return ResultOrder::Labels;
    };
    let names = || {
        call.args
            .args
            .iter()
            .skip(1)
            .filter_map(|a| match a.as_ref() {
                Expr::StringLiteral(s) => Some(s.val.clone()),
                _ => None,
            })
            .collect()
    };
    match call.func.name {
        "sort" => ResultOrder::ValueAscending,
        "sort_desc" => ResultOrder::ValueDescending,
        "sort_by_label" => ResultOrder::ByLabels {
            names: names(),
            descending: false,
        },
        "sort_by_label_desc" => ResultOrder::ByLabels {
            names: names(),
            descending: true,
        },
        _ => ResultOrder::Labels,
    }
}

fn collect_selectors<'a>(e: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn can_match(vs: &VectorSelector, ext: &ExternalLabels) -> bool {
    rewrite_selector(vs, ext).matches
}

/// A selector with a group's external-label matchers applied.
struct SelectorRewrite {
    /// What to send: the selector without those matchers, or, when it cannot match in the
    /// group, with a matcher nothing satisfies instead.
    selector: VectorSelector,
    matches: bool,
    /// Equality matchers on external labels that were removed (for `absent`).
    removed_equalities: Vec<(String, String)>,
}

fn rewrite_selector(vs: &VectorSelector, ext: &ExternalLabels) -> SelectorRewrite {
    let mut removed_equalities = Vec::new();
    // The matchers to keep, and whether they can match in the group.
    let mut apply = |matchers: &[Matcher]| -> (Vec<Matcher>, bool) {
        let mut keep = Vec::with_capacity(matchers.len());
        let mut matches = true;
        for m in matchers {
            match ext.get(&m.name) {
                None => keep.push(m.clone()),
                Some(value) => {
                    if m.op == MatchOp::Equal {
                        removed_equalities.push((m.name.clone(), m.value.clone()));
                    }
                    matches &= m.is_match(value);
                }
            }
        }
        (keep, matches)
    };
    let mut selector = vs.clone();
    let (keep, mut matches) = apply(&vs.matchers.matchers);
    selector.matchers.matchers = keep;
    if !vs.matchers.or_matchers.is_empty() {
        let alternatives: Vec<Vec<Matcher>> = vs
            .matchers
            .or_matchers
            .iter()
            .map(|alt| apply(alt))
            .filter_map(|(keep, ok)| ok.then_some(keep))
            .collect();
        matches &= !alternatives.is_empty();
        // An alternative left without matchers matches everything: the `or` is moot.
        selector.matchers.or_matchers = if alternatives.iter().any(Vec::is_empty) {
            Vec::new()
        } else {
            alternatives
        };
    }
    if !matches {
        selector.matchers.or_matchers.clear();
        selector.matchers.matchers.push(Matcher::new(
            MatchOp::Re(anchored(NONE_REGEX)),
            NONE_LABEL,
            NONE_REGEX,
        ));
    } else if selector.name.is_none() && selector.matchers.is_empty_matchers() {
        selector.matchers.matchers.push(Matcher::new(
            MatchOp::Re(anchored(".+")),
            "__name__",
            ".+",
        ));
    }
    SelectorRewrite {
        selector,
        matches,
        removed_equalities,
    }
}

fn anchored(re: &str) -> regex::Regex {
    // Only called with the constant, valid patterns above.
    regex::Regex::new(&format!("^(?:{re})$")).unwrap_or_else(|_| unreachable!())
}

fn label_replace_function() -> Function {
    static FUNC: OnceLock<Function> = OnceLock::new();
    FUNC.get_or_init(|| {
        match promql_parser::parser::parse(r#"label_replace(x, "a", "", "a", "")"#) {
            Ok(Expr::Call(call)) => call.func,
            _ => unreachable!("label_replace is a PromQL function"),
        }
    })
    .clone()
}

fn string(s: &str) -> Box<Expr> {
    Box::new(Expr::StringLiteral(StringLiteral { val: s.to_string() }))
}

struct Rewriter<'a> {
    ext: &'a ExternalLabels,
}

impl Rewriter<'_> {
    fn expr(&self, e: &Expr) -> Expr {
        match e {
            Expr::VectorSelector(vs) => self.inject(Expr::VectorSelector(self.selector(vs))),
            // Outside a function call a range selector can only be the whole query (an
            // instant query of `x[5m]`); the caller attaches the labels to its answer.
            Expr::MatrixSelector(ms) => Expr::MatrixSelector(self.matrix(ms)),
            Expr::Call(c) => self.call(c),
            Expr::Aggregate(a) => Expr::Aggregate(AggregateExpr {
                expr: Box::new(self.expr(&a.expr)),
                param: a.param.as_ref().map(|p| Box::new(self.expr(p))),
                ..a.clone()
            }),
            Expr::Binary(b) => Expr::Binary(BinaryExpr {
                lhs: Box::new(self.expr(&b.lhs)),
                rhs: Box::new(self.expr(&b.rhs)),
                ..b.clone()
            }),
            Expr::Paren(p) => Expr::Paren(ParenExpr {
                expr: Box::new(self.expr(&p.expr)),
            }),
            Expr::Unary(u) => Expr::Unary(UnaryExpr {
                expr: Box::new(self.expr(&u.expr)),
            }),
            Expr::Subquery(s) => Expr::Subquery(SubqueryExpr {
                expr: Box::new(self.expr(&s.expr)),
                ..s.clone()
            }),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => e.clone(),
        }
    }

    fn selector(&self, vs: &VectorSelector) -> VectorSelector {
        rewrite_selector(vs, self.ext).selector
    }

    fn matrix(&self, ms: &MatrixSelector) -> MatrixSelector {
        MatrixSelector {
            vs: self.selector(&ms.vs),
            range: ms.range,
        }
    }

    fn call(&self, c: &Call) -> Expr {
        let first = c.args.args.first().map(|a| a.as_ref());
        match (c.func.name, first) {
            ("absent", Some(Expr::VectorSelector(vs))) => {
                let rewrite = rewrite_selector(vs, self.ext);
                let arg = Expr::VectorSelector(rewrite.selector);
                self.set_labels(self.with_args(c, vec![arg]), &rewrite.removed_equalities)
            }
            ("absent_over_time", Some(Expr::MatrixSelector(ms))) => {
                let rewrite = rewrite_selector(&ms.vs, self.ext);
                let arg = Expr::MatrixSelector(MatrixSelector {
                    vs: rewrite.selector,
                    range: ms.range,
                });
                self.set_labels(self.with_args(c, vec![arg]), &rewrite.removed_equalities)
            }
            ("timestamp", Some(Expr::VectorSelector(vs))) => {
                let arg = Expr::VectorSelector(self.selector(vs));
                self.inject(self.with_args(c, vec![arg]))
            }
            _ => {
                let mut over_range = false;
                let args = c
                    .args
                    .args
                    .iter()
                    .map(|a| match a.as_ref() {
                        Expr::MatrixSelector(ms) => {
                            over_range = true;
                            Expr::MatrixSelector(self.matrix(ms))
                        }
                        other => self.expr(other),
                    })
                    .collect();
                let call = self.with_args(c, args);
                if over_range { self.inject(call) } else { call }
            }
        }
    }

    fn with_args(&self, c: &Call, args: Vec<Expr>) -> Expr {
        Expr::Call(Call {
            func: c.func.clone(),
            args: FunctionArgs {
                args: args.into_iter().map(Box::new).collect(),
            },
        })
    }

    /// Sets each external label on series that lack it.
    fn inject(&self, mut e: Expr) -> Expr {
        for (name, value) in self.ext {
            e = Expr::Call(Call {
                func: label_replace_function(),
                args: FunctionArgs {
                    args: vec![
                        Box::new(e),
                        string(name),
                        string(value),
                        string(name),
                        string(""),
                    ],
                },
            });
        }
        e
    }

    /// Sets labels unconditionally (absent's output has only matcher-derived labels).
    fn set_labels(&self, mut e: Expr, labels: &[(String, String)]) -> Expr {
        for (name, value) in labels {
            e = Expr::Call(Call {
                func: label_replace_function(),
                args: FunctionArgs {
                    args: vec![
                        Box::new(e),
                        string(name),
                        string(value),
                        string(""),
                        string(""),
                    ],
                },
            });
        }
        e
    }
}

/// Label names whose values are not the same in every group ("" where a group lacks one).
fn distinguishing_labels<'a>(
    groups: impl Iterator<Item = &'a ExternalLabels> + Clone,
) -> BTreeSet<String> {
    let names: BTreeSet<&String> = groups.clone().flat_map(|g| g.keys()).collect();
    names
        .into_iter()
        .filter(|name| {
            let values: BTreeSet<&str> = groups
                .clone()
                .map(|g| g.get(*name).map_or("", String::as_str))
                .collect();
            values.len() > 1
        })
        .cloned()
        .collect()
}

fn has_vector_data(e: &Expr) -> bool {
    let mut selectors = Vec::new();
    collect_selectors(e, &mut selectors);
    !selectors.is_empty()
}

fn keeps_all(modifier: Option<&LabelModifier>, distinguishing: &BTreeSet<String>) -> bool {
    match modifier {
        None => distinguishing.is_empty(),
        Some(LabelModifier::Include(l)) => distinguishing.iter().all(|d| l.labels.contains(d)),
        Some(LabelModifier::Exclude(l)) => !l.labels.iter().any(|n| distinguishing.contains(n)),
    }
}

/// Whether each output series of `e` is computed from one group's series only, and keeps
/// the labels that tell the groups apart.
fn separable(e: &Expr, d: &BTreeSet<String>) -> bool {
    match e {
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_) => true,
        Expr::Paren(p) => separable(&p.expr, d),
        Expr::Unary(u) => separable(&u.expr, d),
        Expr::Subquery(s) => separable(&s.expr, d),
        Expr::Extension(_) => false,
        Expr::Aggregate(a) => {
            let param_ok = a.param.as_ref().is_none_or(|p| !has_vector_data(p));
            let label_param_ok = match (a.op.to_string().as_str(), a.param.as_deref()) {
                ("count_values", Some(Expr::StringLiteral(s))) => !d.contains(&s.val),
                _ => true,
            };
            param_ok && label_param_ok && separable(&a.expr, d) && keeps_all(a.modifier.as_ref(), d)
        }
        Expr::Binary(b) => {
            let (l, r) = (has_vector_data(&b.lhs), has_vector_data(&b.rhs));
            let lhs_vector = matches!(
                b.lhs.value_type(),
                promql_parser::parser::value::ValueType::Vector
            );
            let rhs_vector = matches!(
                b.rhs.value_type(),
                promql_parser::parser::value::ValueType::Vector
            );
            match (lhs_vector, rhs_vector) {
                (true, true) => {
                    separable(&b.lhs, d)
                        && separable(&b.rhs, d)
                        && match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                            None => true,
                            Some(m) => keeps_all(Some(m), d),
                        }
                }
                // A scalar side must not be computed from the data of several groups.
                (true, false) => separable(&b.lhs, d) && !r,
                (false, true) => separable(&b.rhs, d) && !l,
                (false, false) => !l && !r,
            }
        }
        Expr::Call(c) => {
            let args_ok = c.args.args.iter().all(|a| separable(a, d));
            match c.func.name {
                "absent" | "absent_over_time" | "scalar" => false,
                "label_replace" | "label_join" => {
                    let dst_ok = match c.args.args.get(1).map(|a| a.as_ref()) {
                        Some(Expr::StringLiteral(s)) => !d.contains(&s.val),
                        _ => false,
                    };
                    args_ok && dst_ok
                }
                _ => args_ok,
            }
        }
    }
}

#[cfg(test)]
mod tests;
