//! Aggregations (`sum by (job) (x)` and the rest): series are put into groups once, by
//! their labels after `by`/`without`, and each step folds the values of each group.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::EngineError;
use super::eval::{Evaluator, Grid, StepVector, Val};
use super::functions::scalar_arg;
use super::kernels::{kahan_inc, quantile};
use crate::model::Labels;

pub(super) fn aggregate(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    grid: Grid,
) -> Result<Val, EngineError> {
    let op = a.op.to_string();
    let param = match (&a.param, op.as_str()) {
        (Some(p), "count_values") => Param::Label(string_param(p)?),
        (Some(_), _) => Param::Scalar(scalar_arg(
            ev,
            std::slice::from_ref(a.param.as_ref().expect("checked")),
            0,
            grid,
        )?),
        (None, _) => Param::None,
    };
    let input = match ev.eval(&a.expr, grid)? {
        Val::Vector(v) => v,
        _ => {
            return Err(EngineError::BadData(format!(
                "expected type instant vector in aggregation expression {op}"
            )));
        }
    };
    let keys: Vec<Labels> = input
        .labels
        .iter()
        .map(|l| group_key(l, a.modifier.as_ref()))
        .collect();
    let mut group_of = Vec::with_capacity(keys.len());
    let mut groups: Vec<Labels> = Vec::new();
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    for k in &keys {
        let g = *index.entry(k).or_insert_with(|| {
            groups.push(k.clone());
            groups.len() - 1
        });
        group_of.push(g);
    }
    let n = grid.n;
    if let (Param::Scalar(q), "quantile") = (&param, op.as_str()) {
        if input.len() > 0 {
            super::functions::quantile_warning(ev, q);
        }
    }
    let out = match op.as_str() {
        "topk" | "bottomk" | "limitk" => {
            let Param::Scalar(k) = &param else {
                return Err(EngineError::BadData(format!("{op} needs a parameter")));
            };
            select_k(&input, &group_of, groups.len(), k, &op)?
        }
        "limit_ratio" => {
            let Param::Scalar(r) = &param else {
                return Err(EngineError::BadData("limit_ratio needs a parameter".into()));
            };
            limit_ratio(ev, &input, r)?
        }
        "count_values" => {
            let Param::Label(label) = &param else {
                return Err(EngineError::BadData("count_values needs a label".into()));
            };
            count_values(&input, &group_of, &groups, label)?
        }
        "sum" | "count" | "group" | "min" | "max" => streaming(&input, &group_of, &groups, &op),
        _ => {
            let mut out = StepVector::new(n);
            for g in &groups {
                out.push_empty(g.clone());
            }
            let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
            for (s, &g) in group_of.iter().enumerate() {
                members[g].push(s);
            }
            let mut values = Vec::new();
            for (g, series) in members.iter().enumerate() {
                for i in 0..n {
                    values.clear();
                    values.extend(series.iter().filter_map(|&s| input.get(s, i)));
                    if values.is_empty() {
                        continue;
                    }
                    let q = match &param {
                        Param::Scalar(q) => q[i],
                        _ => 0.0,
                    };
                    out.set(g, i, fold(&op, &mut values, q)?);
                }
            }
            out.drop_empty();
            out
        }
    };
    Ok(Val::Vector(out))
}

/// `sum`, `count`, `group`, `min` and `max` in one pass over the input, series by series,
/// into one accumulator per group and step: no per-step gathering of values. Values are
/// folded in series order, the order Prometheus folds them in, so sums round the same way.
fn streaming(input: &StepVector, group_of: &[usize], groups: &[Labels], op: &str) -> StepVector {
    let mut out = StepVector::new(input.n);
    for g in groups {
        out.push_empty(g.clone());
    }
    match op {
        "sum" => {
            let mut compensation = vec![0.0; out.values.len()];
            fold_rows(
                input,
                group_of,
                &mut out,
                &mut compensation,
                |v| v,
                kahan_step,
            );
            for (a, c) in out.values.iter_mut().zip(&compensation) {
                *a += c;
            }
        }
        "count" => fold_rows(
            input,
            group_of,
            &mut out,
            &mut [],
            |_| 1.0,
            |a, _, _| *a += 1.0,
        ),
        "group" => fold_rows(input, group_of, &mut out, &mut [], |_| 1.0, |_, _, _| {}),
        "min" | "max" => {
            let min = op == "min";
            fold_rows(
                input,
                group_of,
                &mut out,
                &mut [],
                |v| v,
                |a, _, v| {
                    if (if min { v < *a } else { v > *a }) || a.is_nan() {
                        *a = v;
                    }
                },
            )
        }
        _ => {}
    }
    out.drop_empty();
    out
}

/// One Kahan–Neumaier step into an accumulator and its compensation.
#[inline(always)]
fn kahan_step(acc: &mut f64, comp: &mut f64, v: f64) {
    (*acc, *comp) = kahan_inc(v, *acc, *comp);
}

/// Folds every input row into its group's row of `out`: a step's first value through
/// `first`, the later ones through `step(acc, compensation, value)`. `compensation` is
/// `out`'s size, or empty when the fold needs none.
#[inline(always)]
fn fold_rows(
    input: &StepVector,
    group_of: &[usize],
    out: &mut StepVector,
    compensation: &mut [f64],
    first: impl Fn(f64) -> f64,
    step: impl Fn(&mut f64, &mut f64, f64),
) {
    let n = input.n;
    let mut unused = 0.0;
    for (s, &g) in group_of.iter().enumerate() {
        let rows = s * n..(s + 1) * n;
        let (values, present) = (&input.values[rows.clone()], &input.present[rows]);
        let row = g * n..(g + 1) * n;
        let acc = &mut out.values[row.clone()];
        let seen = &mut out.present[row.clone()];
        let mut comp = compensation.get_mut(row);
        for i in 0..n
            .min(values.len())
            .min(present.len())
            .min(acc.len())
            .min(seen.len())
        {
            if !present[i] {
                continue;
            }
            let v = values[i];
            if !seen[i] {
                seen[i] = true;
                acc[i] = first(v);
                continue;
            }
            let c = match comp.as_deref_mut() {
                Some(c) => &mut c[i],
                None => &mut unused,
            };
            step(&mut acc[i], c, v);
        }
    }
}

enum Param {
    None,
    Scalar(Vec<f64>),
    Label(String),
}

fn string_param(e: &Expr) -> Result<String, EngineError> {
    match e {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        Expr::Paren(p) => string_param(&p.expr),
        _ => Err(EngineError::BadData("expected a string parameter".into())),
    }
}

/// The labels that name a series' group.
fn group_key(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(by)) => Labels::new(
            labels
                .iter()
                .filter(|(k, _)| by.labels.iter().any(|b| b == k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        Some(LabelModifier::Exclude(without)) => Labels::new(
            labels
                .iter()
                .filter(|(k, _)| *k != "__name__" && !without.labels.iter().any(|w| w == k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    }
}

/// One group's value at one step.
fn fold(op: &str, values: &mut [f64], q: f64) -> Result<f64, EngineError> {
    Ok(match op {
        "sum" => {
            let (mut sum, mut c) = (0.0, 0.0);
            for &v in values.iter() {
                (sum, c) = kahan_inc(v, sum, c);
            }
            sum + c
        }
        "avg" => {
            let (mut sum, mut c, mut mean, mut count) = (0.0, 0.0, 0.0, 0.0);
            let mut incremental = false;
            for &v in values.iter() {
                count += 1.0;
                if !incremental {
                    let (ns, nc) = kahan_inc(v, sum, c);
                    if count == 1.0 || !ns.is_infinite() {
                        (sum, c) = (ns, nc);
                        continue;
                    }
                    incremental = true;
                    mean = sum / (count - 1.0);
                    c /= count - 1.0;
                }
                let r = (count - 1.0) / count;
                (mean, c) = kahan_inc(v / count, r * mean, r * c);
            }
            if incremental {
                mean + c
            } else {
                sum / count + c / count
            }
        }
        "count" => values.len() as f64,
        "group" => 1.0,
        "min" => values[1..]
            .iter()
            .fold(values[0], |m, &x| if x < m || m.is_nan() { x } else { m }),
        "max" => values[1..]
            .iter()
            .fold(values[0], |m, &x| if x > m || m.is_nan() { x } else { m }),
        "stddev" | "stdvar" => {
            let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &v in values.iter() {
                count += 1.0;
                let delta = v - (mean + cm);
                (mean, cm) = kahan_inc(delta / count, mean, cm);
                (aux, ca) = kahan_inc(delta * (v - (mean + cm)), aux, ca);
            }
            let var = (aux + ca) / count;
            if op == "stddev" { var.sqrt() } else { var }
        }
        "quantile" => quantile(q, values),
        other => return Err(EngineError::Unsupported(format!("aggregation {other}"))),
    })
}

/// `topk`, `bottomk` and `limitk`: per step and group, the k series to keep, with their
/// own labels.
fn select_k(
    input: &StepVector,
    group_of: &[usize],
    groups: usize,
    k: &[f64],
    op: &str,
) -> Result<StepVector, EngineError> {
    let n = input.n;
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for (s, &g) in group_of.iter().enumerate() {
        members[g].push(s);
    }
    // Per step, the chosen series in rank order, group after group.
    let mut chosen: Vec<Vec<(usize, f64)>> = Vec::with_capacity(n);
    for i in 0..n {
        let any = (0..input.len()).any(|s| input.get(s, i).is_some());
        if !any {
            chosen.push(Vec::new());
            continue;
        }
        if k[i].is_nan() {
            return Err(EngineError::Execution(
                "Scalar value NaN overflows int64".into(),
            ));
        }
        let want = if k[i] < 1.0 {
            0
        } else {
            k[i].min(usize::MAX as f64) as usize
        };
        let mut step = Vec::new();
        for series in &members {
            if want == 0 {
                break;
            }
            let present = series
                .iter()
                .filter_map(|&s| input.get(s, i).map(|v| (s, v)));
            if op == "limitk" {
                step.extend(present.take(want));
                continue;
            }
            let mut kept = RankHeap::new(op == "topk", want);
            for candidate in present {
                kept.offer(candidate);
            }
            step.extend(kept.into_ranked());
        }
        chosen.push(step);
    }
    // An instant query answers in rank order; a range query's order is by labels anyway.
    let mut out = StepVector::new(n);
    let mut ids: HashMap<usize, usize> = HashMap::new();
    for (i, step) in chosen.iter().enumerate() {
        for &(s, v) in step {
            let id = *ids
                .entry(s)
                .or_insert_with(|| out.push_empty(input.labels[s].clone()));
            out.set(id, i, v);
        }
    }
    out.drop_empty();
    Ok(out)
}

/// `limit_ratio(r, v)`: a deterministic sample of the series, the same for the same labels
/// at every step and the one Prometheus takes: a series' offset is a hash of its labels
/// scaled to [0, 1] (`sample_offset`); `r >= 0` keeps offsets below `r`, `r < 0` those at
/// or above `1 + r`, so `limit_ratio(r)` and `limit_ratio(-(1 - r))` split the series
/// between them. `r` outside [-1, 1] is capped, with Prometheus's warning.
fn limit_ratio(
    ev: &mut Evaluator<'_>,
    input: &StepVector,
    ratios: &[f64],
) -> Result<StepVector, EngineError> {
    let offsets: Vec<f64> = input.labels.iter().map(sample_offset).collect();
    let mut out = StepVector::new(input.n);
    let mut ids: Vec<Option<usize>> = vec![None; input.len()];
    for (i, &r) in ratios.iter().enumerate().take(input.n) {
        if !(0..input.len()).any(|s| input.get(s, i).is_some()) {
            continue;
        }
        if r.is_nan() {
            return Err(EngineError::Execution(format!("Ratio value {r} is NaN")));
        }
        let capped = r.clamp(-1.0, 1.0);
        if capped != r {
            let warning = format!(
                "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                super::functions::go_float(r),
                super::functions::go_float(capped)
            );
            if !ev.warnings.contains(&warning) {
                ev.warnings.push(warning);
            }
        }
        for (s, &offset) in offsets.iter().enumerate() {
            let keep =
                (capped >= 0.0 && offset < capped) || (capped < 0.0 && offset >= 1.0 + capped);
            if let (true, Some(v)) = (keep, input.get(s, i)) {
                let id = *ids[s].get_or_insert_with(|| out.push_empty(input.labels[s].clone()));
                out.set(id, i, v);
            }
        }
    }
    out.drop_empty();
    Ok(out)
}

/// Where a series falls in [0, 1] for `limit_ratio`: the hash Prometheus's label sets
/// have in its release builds (labels stored as one string, each name and value preceded by
/// its length as a uvarint), over `float64(MaxUint64)`.
fn sample_offset(labels: &Labels) -> f64 {
    let mut bytes = Vec::with_capacity(labels.iter().map(|(n, v)| n.len() + v.len() + 4).sum());
    for (name, value) in labels.iter() {
        for text in [name, value] {
            let mut len = text.len();
            while len >= 0x80 {
                bytes.push((len as u8 & 0x7f) | 0x80);
                len >>= 7;
            }
            bytes.push(len as u8);
            bytes.extend_from_slice(text.as_bytes());
        }
    }
    xxhash_rust::xxh64::xxh64(&bytes, 0) as f64 / u64::MAX as f64
}

/// The k series `topk`/`bottomk` keep, chosen as Prometheus chooses them: a binary heap of
/// up to k entries with the weakest on top, which a newcomer replaces only when strictly
/// better. Ties therefore resolve the way Prometheus's do (the order series arrive in and
/// the heap's layout decide), not by a sort.
struct RankHeap {
    top: bool,
    k: usize,
    heap: Vec<(usize, f64)>,
}

impl RankHeap {
    fn new(top: bool, k: usize) -> Self {
        RankHeap {
            top,
            k,
            heap: Vec::new(),
        }
    }

    /// Whether entry `i` is weaker than `j` (belongs nearer the top). NaN is weakest.
    fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.heap[i].1, self.heap[j].1);
        if a.is_nan() {
            return true;
        }
        if self.top { a < b } else { a > b }
    }

    fn offer(&mut self, entry: (usize, f64)) {
        if self.heap.len() < self.k {
            self.heap.push(entry);
            self.up(self.heap.len() - 1);
            return;
        }
        let weakest = self.heap[0].1;
        let better = if self.top {
            weakest < entry.1
        } else {
            weakest > entry.1
        };
        if better || (weakest.is_nan() && !entry.1.is_nan()) {
            self.heap[0] = entry;
            if self.k > 1 && !self.down(0) {
                self.up(0);
            }
        }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.heap.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize) -> bool {
        let n = self.heap.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && self.less(j1 + 1, j1) {
                j = j1 + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.heap.swap(i, j);
            i = j;
        }
        i > i0
    }

    /// Best first (NaN last).
    fn into_ranked(mut self) -> Vec<(usize, f64)> {
        let top = self.top;
        self.heap.sort_by(|a, b| super::rank_order(a.1, b.1, top));
        self.heap
    }
}

fn count_values(
    input: &StepVector,
    group_of: &[usize],
    groups: &[Labels],
    label: &str,
) -> Result<StepVector, EngineError> {
    let n = input.n;
    let mut out = StepVector::new(n);
    let mut ids: HashMap<Labels, usize> = HashMap::new();
    for i in 0..n {
        for (s, &g) in group_of.iter().enumerate() {
            let Some(v) = input.get(s, i) else { continue };
            let mut labels = groups[g].clone();
            labels.remove(label);
            labels.set_if_absent(label, &format_value(v));
            let id = *ids
                .entry(labels.clone())
                .or_insert_with(|| out.push_empty(labels));
            let now = out.get(id, i).unwrap_or(0.0);
            out.set(id, i, now + 1.0);
        }
    }
    Ok(out)
}

/// A value as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        let s = format!("{v}");
        if s == "-0" { "-0".into() } else { s }
    }
}
