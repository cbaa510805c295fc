//! Answers of both engines in one shape, and what differs between two of them.

use serde_json::Value;

/// One series: its labels (as canonical JSON) and its points `(t_ms, value)`.
type Series = (String, Vec<(i64, f64)>);

/// A successful answer, reduced to what must agree.
#[derive(Debug)]
pub struct Answer {
    kind: String,
    /// A string result's text.
    text: Option<String>,
    /// Scalars are one series with empty labels; vectors hold one point per series.
    series: Vec<Series>,
}

impl Answer {
    /// No series (a scalar or string is never empty).
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// An answer or the error message.
pub type Outcome = Result<Answer, String>;

/// Reads a `/api/v1/query{,_range}` JSON body; `keep_order` keeps the series in the order
/// given (sort and sort_desc), otherwise they are sorted by labels.
pub fn from_json(body: &Value, keep_order: bool) -> Outcome {
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    let data = &body["data"];
    let kind = data["resultType"].as_str().unwrap_or("?").to_string();
    let result = &data["result"];
    let mut answer = Answer {
        kind: kind.clone(),
        text: None,
        series: Vec::new(),
    };
    match kind.as_str() {
        "scalar" => answer.series.push((String::new(), vec![point(result)?])),
        "string" => {
            answer
                .series
                .push((String::new(), vec![(millis(&result[0])?, 0.0)]));
            answer.text = result[1].as_str().map(str::to_string);
        }
        "vector" | "matrix" => {
            for s in result.as_array().ok_or("result is not an array")? {
                let points = match s.get("values") {
                    Some(values) => values
                        .as_array()
                        .ok_or("values is not an array")?
                        .iter()
                        .map(point)
                        .collect::<Result<Vec<_>, _>>()?,
                    None => vec![point(&s["value"])?],
                };
                answer.series.push((s["metric"].to_string(), points));
            }
        }
        other => return Err(format!("unknown resultType {other}")),
    }
    if !keep_order {
        answer.series.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(answer)
}

fn millis(t: &Value) -> Result<i64, String> {
    t.as_f64()
        .map(|s| (s * 1000.0).round() as i64)
        .ok_or_else(|| format!("bad timestamp {t}"))
}

fn point(p: &Value) -> Result<(i64, f64), String> {
    let v = match p[1].as_str().ok_or_else(|| format!("bad point {p}"))? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|e| format!("bad value {v}: {e}"))?,
    };
    Ok((millis(&p[0])?, v))
}

/// Equal within a relative 1e-9 (summation order differs between engines); NaN equals NaN.
fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// `None` when the outcomes agree (both errors agree), else a short description of the first
/// differences.
pub fn diff(ours: &Outcome, theirs: &Outcome) -> Option<String> {
    let (a, b) = match (ours, theirs) {
        (Err(_), Err(_)) => return None,
        (Err(e), Ok(b)) => return Some(format!("ours failed ({e}), theirs is a {}", b.kind)),
        (Ok(a), Err(e)) => return Some(format!("ours is a {}, theirs failed ({e})", a.kind)),
        (Ok(a), Ok(b)) => (a, b),
    };
    if a.kind != b.kind {
        return Some(format!("resultType {} vs {}", a.kind, b.kind));
    }
    if a.text != b.text {
        return Some(format!("string {:?} vs {:?}", a.text, b.text));
    }
    let labels = |x: &Answer| x.series.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    let (la, lb) = (labels(a), labels(b));
    if la != lb {
        let only = |x: &[String], y: &[String]| {
            x.iter()
                .filter(|l| !y.contains(l))
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Some(format!(
            "series differ: {} vs {}; only ours: [{}]; only theirs: [{}]",
            la.len(),
            lb.len(),
            only(&la, &lb),
            only(&lb, &la)
        ));
    }
    let mut out = Vec::new();
    let mut differing = 0;
    for ((labels, pa), (_, pb)) in a.series.iter().zip(&b.series) {
        let ta: Vec<i64> = pa.iter().map(|p| p.0).collect();
        let tb: Vec<i64> = pb.iter().map(|p| p.0).collect();
        if ta != tb {
            differing += 1;
            if out.len() < 2 {
                let missing = |x: &[i64], y: &[i64]| {
                    let m: Vec<i64> = x.iter().filter(|t| !y.contains(t)).copied().collect();
                    format!("{} {:?}", m.len(), &m[..m.len().min(3)])
                };
                out.push(format!(
                    "{labels}: timestamps only ours {}, only theirs {}",
                    missing(&ta, &tb),
                    missing(&tb, &ta)
                ));
            }
            continue;
        }
        let bad: Vec<_> = pa
            .iter()
            .zip(pb)
            .filter(|(x, y)| !close(x.1, y.1))
            .collect();
        if let Some(((t, x), (_, y))) = bad.first() {
            differing += 1;
            if out.len() < 2 {
                out.push(format!(
                    "{labels}: {} of {} points differ, first at {t}: {x} vs {y}",
                    bad.len(),
                    pa.len()
                ));
            }
        }
    }
    (differing > 0).then(|| format!("{differing} series differ: {}", out.join("; ")))
}
