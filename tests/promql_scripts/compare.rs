//! Checks an engine answer against an eval's expected lines, as Prometheus's runner does:
//! floats within a relative 1e-6, NaN equal to NaN, label sets exact, order ignored unless
//! the eval is ordered, and for range results `_` meaning "no point at this step".

use std::cmp::Ordering;
use std::collections::HashMap;

use promgate::model::Labels;
use promgate::promql::engine::Value;

use super::{Expected, ExpectedSeries, LabelPairs};

const EPSILON: f64 = 1e-6;

/// Prometheus's float comparison (`almost.Equal`): NaN matches NaN (a staleness marker is a
/// NaN too), otherwise the difference relative to the sum of magnitudes must stay under
/// 1e-6; against zero (or subnormals) the numbers must be all but identical.
pub fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

pub fn pairs(labels: &Labels) -> LabelPairs {
    let mut p: LabelPairs = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.sort();
    p
}

pub fn show_labels(labels: &LabelPairs) -> String {
    let name = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map(|(_, v)| v.as_str());
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{}{{{}}}", name.unwrap_or(""), rest.join(", "))
}

fn show_values(values: &[Option<f64>]) -> String {
    let v: Vec<String> = values
        .iter()
        .map(|v| v.map_or("_".to_string(), |f| f.to_string()))
        .collect();
    v.join(" ")
}

/// Prometheus's label-set order (pairwise by name then value, a prefix first), which range
/// results must follow.
pub fn compare_label_sets(a: &LabelPairs, b: &LabelPairs) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// An instant vector against the expected series; `ordered` also checks positions.
pub fn compare_vector(
    expected: &[ExpectedSeries],
    ordered: bool,
    actual: &[(LabelPairs, f64)],
) -> Result<(), String> {
    let index: HashMap<&LabelPairs, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (&e.labels, i))
        .collect();
    let mut seen = vec![false; expected.len()];
    for (pos, (labels, value)) in actual.iter().enumerate() {
        let Some(&i) = index.get(labels) else {
            return Err(format!(
                "unexpected series {} = {value} in result",
                show_labels(labels)
            ));
        };
        if seen[i] {
            return Err(format!("series {} twice in result", show_labels(labels)));
        }
        seen[i] = true;
        if ordered && i != pos {
            return Err(format!(
                "series {} at position {} but expected at {}",
                show_labels(labels),
                pos + 1,
                i + 1
            ));
        }
        let want = expected[i].values.first().copied().flatten();
        match want {
            Some(w) if almost_equal(w, *value) => {}
            _ => {
                return Err(format!(
                    "{}: expected {} but got {value}",
                    show_labels(labels),
                    show_values(&expected[i].values)
                ));
            }
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(format!(
            "expected series {} = {} not in result ({} series returned)",
            show_labels(&expected[i].labels),
            show_values(&expected[i].values),
            actual.len()
        ));
    }
    Ok(())
}

/// A matrix against expected series with one value per step from `start_ms` (`None` = no
/// point at that step); series must come sorted by labels, as a range query returns them.
pub fn compare_matrix(
    expected: &[ExpectedSeries],
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    actual: &[(LabelPairs, Vec<(i64, f64)>)],
) -> Result<(), String> {
    for w in actual.windows(2) {
        if compare_label_sets(&w[0].0, &w[1].0) != Ordering::Less {
            return Err(format!(
                "matrix not sorted by labels: {} before {}",
                show_labels(&w[0].0),
                show_labels(&w[1].0)
            ));
        }
    }
    let index: HashMap<&LabelPairs, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (&e.labels, i))
        .collect();
    let mut seen = vec![false; expected.len()];
    for (labels, points) in actual {
        let Some(&i) = index.get(labels) else {
            return Err(format!(
                "unexpected series {} in result: {points:?}",
                show_labels(labels)
            ));
        };
        seen[i] = true;
        let mut want: Vec<(i64, f64)> = Vec::new();
        for (k, v) in expected[i].values.iter().enumerate() {
            let t = start_ms + k as i64 * step_ms;
            if t > end_ms || (k > 0 && step_ms == 0) {
                return Err(format!(
                    "{} expects {} points, more than the time range holds",
                    show_labels(labels),
                    expected[i].values.len()
                ));
            }
            if let Some(v) = v {
                want.push((t, *v));
            }
        }
        if want.len() != points.len() {
            return Err(format!(
                "{}: expected {} points ({}) but got {}: {points:?}",
                show_labels(labels),
                want.len(),
                show_values(&expected[i].values),
                points.len()
            ));
        }
        for (k, (w, got)) in want.iter().zip(points).enumerate() {
            if w.0 != got.0 {
                return Err(format!(
                    "{}: point {k} expected at t={} but is at t={}",
                    show_labels(labels),
                    w.0,
                    got.0
                ));
            }
            if !almost_equal(w.1, got.1) {
                return Err(format!(
                    "{}: at t={} expected {} but got {}",
                    show_labels(labels),
                    w.0,
                    w.1,
                    got.1
                ));
            }
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(format!(
            "expected series {} = {} not in result",
            show_labels(&expected[i].labels),
            show_values(&expected[i].values)
        ));
    }
    Ok(())
}

/// Where on the time axis a result is checked: an instant eval at `at`, or a range.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

/// Any engine value against what the eval expects.
pub fn compare_value(
    expected: &Expected,
    ordered: bool,
    window: Window,
    value: &Value,
) -> Result<(), String> {
    match (expected, value) {
        (Expected::Scalar(want), Value::Scalar(got)) => {
            if almost_equal(*want, *got) {
                Ok(())
            } else {
                Err(format!("expected scalar {want} but got {got}"))
            }
        }
        (Expected::String(want), Value::String(got)) => {
            if want == got {
                Ok(())
            } else {
                Err(format!("expected string {want:?} but got {got:?}"))
            }
        }
        (Expected::Series(series), Value::Vector(v)) => {
            if matches!(window, Window::Range { .. }) {
                return Err("a range query returned a vector".into());
            }
            let actual: Vec<(LabelPairs, f64)> =
                v.iter().map(|s| (pairs(&s.labels), s.value)).collect();
            compare_vector(series, ordered, &actual)
        }
        (Expected::Series(series), Value::Matrix(m)) => {
            if ordered {
                return Err("expected an ordered vector but got a matrix".into());
            }
            let actual: Vec<(LabelPairs, Vec<(i64, f64)>)> = m
                .iter()
                .map(|s| (pairs(&s.labels), s.points.clone()))
                .collect();
            let (start, end, step) = match window {
                Window::Instant(t) => (t, t, 0),
                Window::Range { start, end, step } => (start, end, step),
            };
            compare_matrix(series, start, end, step, &actual)
        }
        (want, got) => Err(format!(
            "expected {} but got {}",
            kind_of_expected(want),
            kind_of_value(got)
        )),
    }
}

fn kind_of_expected(e: &Expected) -> &'static str {
    match e {
        Expected::Scalar(_) => "a scalar",
        Expected::String(_) => "a string",
        Expected::Series(_) => "a vector or matrix",
    }
}

pub fn kind_of_value(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "a scalar",
        Value::String(_) => "a string",
        Value::Vector(_) => "a vector",
        Value::Matrix(_) => "a matrix",
    }
}
