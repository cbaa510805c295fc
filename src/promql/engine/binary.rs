//! Binary operators: arithmetic, comparisons (filtering or `bool`) and set operators, between
//! scalars and vectors, with PromQL's vector matching (`on`/`ignoring`,
//! `group_left`/`group_right`). Each series' matching signature is computed once; each step
//! matches the present series through a hash map of signatures.

use std::collections::HashMap;

use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::EngineError;
use super::eval::{Evaluator, Grid, StepVector, Val};
use crate::model::Labels;

pub(super) fn binary(
    ev: &mut Evaluator<'_>,
    b: &BinaryExpr,
    grid: Grid,
) -> Result<Val, EngineError> {
    let op = b.op.to_string().to_lowercase();
    let lhs = ev.eval(&b.lhs, grid)?;
    let rhs = ev.eval(&b.rhs, grid)?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    match (lhs, rhs) {
        // Between scalars a comparison must be `bool` (the parser insists): 1 or 0.
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter().zip(&r).map(|(&x, &y)| apply(&op, x, y)).collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => {
            vector_scalar(v, &s, &op, return_bool, false).map(Val::Vector)
        }
        (Val::Scalar(s), Val::Vector(v)) => {
            vector_scalar(v, &s, &op, return_bool, true).map(Val::Vector)
        }
        (Val::Vector(l), Val::Vector(r)) => {
            vector_vector(l, r, &op, b.modifier.as_ref()).map(Val::Vector)
        }
        _ => Err(EngineError::BadData(format!(
            "binary expression must contain only scalar and instant vector types (operator {op})"
        ))),
    }
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// `x op y` for arithmetic; 1.0/0.0 for comparisons.
fn apply(op: &str, x: f64, y: f64) -> f64 {
    let b = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        "+" => x + y,
        "-" => x - y,
        "*" => x * y,
        "/" => x / y,
        "%" => x % y,
        "^" => x.powf(y),
        "atan2" => x.atan2(y),
        "==" => b(x == y),
        "!=" => b(x != y),
        ">" => b(x > y),
        "<" => b(x < y),
        ">=" => b(x >= y),
        "<=" => b(x <= y),
        _ => f64::NAN,
    }
}

fn vector_scalar(
    mut v: StepVector,
    s: &[f64],
    op: &str,
    return_bool: bool,
    scalar_left: bool,
) -> Result<StepVector, EngineError> {
    let n = v.n;
    let comparison = is_comparison(op);
    for series in 0..v.len() {
        for i in 0..n {
            let idx = series * n + i;
            if !v.present[idx] {
                continue;
            }
            let x = v.values[idx];
            let (l, r) = if scalar_left { (s[i], x) } else { (x, s[i]) };
            let result = apply(op, l, r);
            if comparison && !return_bool {
                if result == 0.0 {
                    v.present[idx] = false;
                }
                // A filter keeps the vector's own value.
            } else {
                v.values[idx] = result;
            }
        }
    }
    if !comparison || return_bool {
        for l in &mut v.labels {
            l.remove("__name__");
        }
    }
    v.drop_empty();
    v.merge_equal_labels()
}

/// The labels a series is matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => Labels::new(
            labels
                .iter()
                .filter(|(k, _)| on.labels.iter().any(|o| o == k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        Some(LabelModifier::Exclude(ignoring)) => Labels::new(
            labels
                .iter()
                .filter(|(k, _)| *k != "__name__" && !ignoring.labels.iter().any(|i| i == k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        None => Labels::new(
            labels
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    }
}

fn vector_vector(
    lhs: StepVector,
    rhs: StepVector,
    op: &str,
    modifier: Option<&BinModifier>,
) -> Result<StepVector, EngineError> {
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let card = modifier.map_or(&VectorMatchCardinality::OneToOne, |m| &m.card);
    match op {
        "and" | "or" | "unless" => return Ok(set_operation(lhs, rhs, op, matching)),
        _ => {}
    }
    let return_bool = modifier.is_some_and(|m| m.return_bool);
    // group_right: the right side is the "many" side; swap and remember.
    let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let include: Vec<String> = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let many_sigs: Vec<Labels> = many.labels.iter().map(|l| signature(l, matching)).collect();
    let one_sigs: Vec<Labels> = one.labels.iter().map(|l| signature(l, matching)).collect();
    let n = many.n;
    let comparison = is_comparison(op);
    let mut out = StepVector::new(n);
    let mut ids: HashMap<Labels, usize> = HashMap::new();
    // Output labels per (many, one) pair are the same at every step: computed once.
    let mut labels_of: HashMap<(usize, usize), Labels> = HashMap::new();
    for i in 0..n {
        let mut by_sig: HashMap<&Labels, usize> = HashMap::new();
        for (s, sig) in one_sigs.iter().enumerate() {
            if one.get(s, i).is_none() {
                continue;
            }
            if by_sig.insert(sig, s).is_some() {
                let side = if swapped { "left" } else { "right" };
                return Err(EngineError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side",
                    format_labels(sig)
                )));
            }
        }
        let mut seen_many: HashMap<&Labels, usize> = HashMap::new();
        let mut written: Vec<usize> = Vec::new();
        for (s, sig) in many_sigs.iter().enumerate() {
            let Some(x) = many.get(s, i) else { continue };
            let Some(&o) = by_sig.get(sig) else { continue };
            if one_to_one && seen_many.insert(sig, s).is_some() {
                let side = if swapped { "right" } else { "left" };
                return Err(EngineError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side",
                    format_labels(sig)
                )));
            }
            let y = one.get(o, i).unwrap_or(f64::NAN);
            let (l, r) = if swapped { (y, x) } else { (x, y) };
            let result = apply(op, l, r);
            let value = if comparison && !return_bool {
                if result == 0.0 {
                    continue;
                }
                l
            } else {
                result
            };
            let labels = labels_of
                .entry((s, o))
                .or_insert_with(|| {
                    result_labels(
                        &many.labels[s],
                        &one.labels[o],
                        op,
                        return_bool,
                        matching,
                        one_to_one,
                        &include,
                    )
                })
                .clone();
            let id = *ids
                .entry(labels.clone())
                .or_insert_with(|| out.push_empty(labels));
            if written.contains(&id) {
                return Err(EngineError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            written.push(id);
            out.set(id, i, value);
        }
    }
    out.drop_empty();
    Ok(out)
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    op: &str,
    return_bool: bool,
    matching: Option<&LabelModifier>,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut labels = many.clone();
    if !is_comparison(op) || return_bool {
        labels.remove("__name__");
    }
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(on)) => {
                let keep: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(k, _)| on.labels.iter().any(|o| o == k))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                labels = Labels::new(keep);
            }
            Some(LabelModifier::Exclude(ignoring)) => {
                for l in &ignoring.labels {
                    labels.remove(l);
                }
            }
            None => {}
        }
    }
    for name in include {
        labels.remove(name);
        if let Some(v) = one.get(name).filter(|v| !v.is_empty()) {
            labels.set_if_absent(name, v);
        }
    }
    labels
}

fn format_labels(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// `and`, `or`, `unless`, step by step on signatures.
fn set_operation(
    lhs: StepVector,
    rhs: StepVector,
    op: &str,
    matching: Option<&LabelModifier>,
) -> StepVector {
    let n = lhs.n;
    let lsig: Vec<Labels> = lhs.labels.iter().map(|l| signature(l, matching)).collect();
    let rsig: Vec<Labels> = rhs.labels.iter().map(|l| signature(l, matching)).collect();
    let mut out = StepVector::new(n);
    for l in &lhs.labels {
        out.push_empty(l.clone());
    }
    let offset = out.len();
    if op == "or" {
        for l in &rhs.labels {
            out.push_empty(l.clone());
        }
    }
    for i in 0..n {
        let right: std::collections::HashSet<&Labels> = (0..rhs.len())
            .filter(|&s| rhs.get(s, i).is_some())
            .map(|s| &rsig[s])
            .collect();
        let mut left_present: std::collections::HashSet<&Labels> = Default::default();
        for s in 0..lhs.len() {
            let Some(v) = lhs.get(s, i) else { continue };
            left_present.insert(&lsig[s]);
            let keep = match op {
                "and" => right.contains(&lsig[s]),
                "unless" => !right.contains(&lsig[s]),
                _ => true,
            };
            if keep {
                out.set(s, i, v);
            }
        }
        if op == "or" {
            for s in 0..rhs.len() {
                if let Some(v) = rhs.get(s, i) {
                    if !left_present.contains(&rsig[s]) {
                        out.set(offset + s, i, v);
                    }
                }
            }
        }
    }
    out.drop_empty();
    out
}
