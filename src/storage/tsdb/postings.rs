//! Series selection by label matchers, as Prometheus's `PostingsForMatchers` does it, over
//! sorted lists of series references: intersection, union and difference, and the choice
//! of lists for each matcher.
//!
//! A series without a label counts as having it empty, so a matcher that matches the empty
//! string (`foo=""`, `foo!="x"`, `foo=~"|x"`, `foo!~"x"`) selects every series except those
//! whose value of the label it rejects: its lists are subtracted. A matcher that does not
//! match the empty string selects the union of the lists of the values it accepts: those are
//! intersected. With nothing to intersect, selection starts from every series.

use std::ops::Range;

use promql_parser::label::{MatchOp, Matcher};

use super::BlockError;
use super::block::Source;
use super::index::IndexHeader;

/// The references in both sorted lists.
pub fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    let mut j = 0;
    for &x in small {
        // Gallop when one list is much longer than the other.
        j += large[j..].partition_point(|&y| y < x);
        if j == large.len() {
            break;
        }
        if large[j] == x {
            out.push(x);
            j += 1;
        }
    }
    out
}

/// The references in any of the sorted lists, sorted and without repeats.
pub fn merge(lists: &[Vec<u64>]) -> Vec<u64> {
    match lists {
        [] => Vec::new(),
        [one] => one.clone(),
        _ => {
            let mut out: Vec<u64> = lists.iter().flatten().copied().collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// The references of `a` not in `b` (both sorted).
pub fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        j += b[j..].partition_point(|&y| y < x);
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

/// What one matcher contributes.
enum Plan {
    /// Intersect with the union of these lists.
    Intersect(Vec<Range<u64>>),
    /// Subtract the union of these lists.
    Subtract(Vec<Range<u64>>),
}

/// The values a regex accepts when it is a plain alternation of literals (`a|b|c`), as
/// PromQL selectors often are: those are looked up instead of scanning the label's values.
fn literal_alternatives(m: &Matcher) -> Option<Vec<&str>> {
    if !matches!(m.op, MatchOp::Re(_) | MatchOp::NotRe(_)) {
        return None;
    }
    let parts: Vec<&str> = m.value.split('|').collect();
    parts
        .iter()
        .all(|p| {
            !p.contains([
                '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
            ])
        })
        .then_some(parts)
}

fn lookups(header: &IndexHeader, name: &str, values: &[&str]) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = values
        .iter()
        .filter_map(|v| header.postings_range(name, v))
        .collect();
    ranges.sort_by_key(|r| r.start);
    ranges.dedup();
    ranges
}

fn plan(header: &IndexHeader, m: &Matcher) -> Plan {
    let name = m.name.as_str();
    let accepts_empty = m.is_match("");
    // Exact lookups where the matcher names its values; a scan of the label's values
    // otherwise.
    match (&m.op, accepts_empty) {
        (MatchOp::Equal, false) => Plan::Intersect(lookups(header, name, &[&m.value])),
        (MatchOp::NotEqual, true) => Plan::Subtract(lookups(header, name, &[&m.value])),
        (MatchOp::Re(_), false) | (MatchOp::NotRe(_), true) => {
            if let Some(values) = literal_alternatives(m) {
                return match m.op {
                    MatchOp::Re(_) => Plan::Intersect(lookups(header, name, &values)),
                    _ => Plan::Subtract(lookups(header, name, &values)),
                };
            }
            scan(header, m, accepts_empty)
        }
        _ => scan(header, m, accepts_empty),
    }
}

/// The lists of the values `m` accepts (when it does not accept the empty string) or
/// rejects (when it does), found by testing every value of the label.
fn scan(header: &IndexHeader, m: &Matcher, accepts_empty: bool) -> Plan {
    let name = m.name.as_str();
    match accepts_empty {
        false => Plan::Intersect(
            header
                .label_values(name)
                .filter(|(v, _)| m.is_match(v))
                .map(|(_, r)| r)
                .collect(),
        ),
        true => Plan::Subtract(
            header
                .label_values(name)
                .filter(|(v, _)| !m.is_match(v))
                .map(|(_, r)| r)
                .collect(),
        ),
    }
}

/// The sorted references of the series matching every matcher.
pub(crate) async fn postings_for_matchers(
    header: &IndexHeader,
    src: &Source,
    matchers: &[Matcher],
) -> Result<Vec<u64>, BlockError> {
    let plans: Vec<Plan> = matchers.iter().map(|m| plan(header, m)).collect();
    // A matcher that accepts no value present in the block selects nothing.
    if plans
        .iter()
        .any(|p| matches!(p, Plan::Intersect(r) if r.is_empty()))
    {
        return Ok(Vec::new());
    }
    let needs_all = !plans.iter().any(|p| matches!(p, Plan::Intersect(_)));
    // One batch of reads for every list involved.
    let mut ranges: Vec<Range<u64>> = Vec::new();
    if needs_all {
        match header.all_postings_range() {
            Some(r) => ranges.push(r),
            None => return Ok(Vec::new()),
        }
    }
    for p in &plans {
        match p {
            Plan::Intersect(r) | Plan::Subtract(r) => ranges.extend(r.iter().cloned()),
        }
    }
    let mut lists = header.postings(src, &ranges).await?.into_iter();
    let mut result: Option<Vec<u64>> = if needs_all { lists.next() } else { None };
    let mut subtract_lists = Vec::new();
    for p in &plans {
        match p {
            Plan::Intersect(r) => {
                let union = merge(&lists.by_ref().take(r.len()).collect::<Vec<_>>());
                result = Some(match result {
                    Some(acc) => intersect(&acc, &union),
                    None => union,
                });
            }
            Plan::Subtract(r) => subtract_lists.extend(lists.by_ref().take(r.len())),
        }
    }
    let mut result = result.unwrap_or_default();
    if !subtract_lists.is_empty() {
        result = subtract(&result, &merge(&subtract_lists));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter().copied().filter(|x| b.contains(x)).collect()
    }

    #[test]
    fn literal_alternations_are_recognised() {
        let re = |op: &str, v: &str| {
            let r = regex::Regex::new(&format!("^(?:{v})$")).unwrap();
            let op = if op == "=~" {
                MatchOp::Re(r)
            } else {
                MatchOp::NotRe(r)
            };
            Matcher::new(op, "x", v)
        };
        assert_eq!(
            literal_alternatives(&re("=~", "a|b_c|d-1")),
            Some(vec!["a", "b_c", "d-1"])
        );
        assert_eq!(literal_alternatives(&re("!~", "|a")), Some(vec!["", "a"]));
        assert_eq!(literal_alternatives(&re("=~", "a.*")), None);
        assert_eq!(literal_alternatives(&re("=~", "(a|b)")), None);
        assert_eq!(literal_alternatives(&re("=~", "a\\.b")), None);
        assert_eq!(
            literal_alternatives(&Matcher::new(MatchOp::Equal, "x", "a|b")),
            None
        );
    }

    #[test]
    fn set_operations_agree_with_brute_force() {
        let lists: Vec<Vec<u64>> = vec![
            vec![],
            vec![1],
            vec![1, 2, 3, 10, 20],
            vec![2, 3, 4, 5, 6, 7, 8, 9, 10],
            vec![0, 10, 100, 1000],
            (0..500).map(|x| x * 3).collect(),
            (0..300).map(|x| x * 5 + 1).collect(),
        ];
        for a in &lists {
            for b in &lists {
                assert_eq!(intersect(a, b), brute_intersect(a, b), "{a:?} & {b:?}");
                let sub: Vec<u64> = a.iter().copied().filter(|x| !b.contains(x)).collect();
                assert_eq!(subtract(a, b), sub, "{a:?} - {b:?}");
                let mut union: Vec<u64> = a.iter().chain(b).copied().collect();
                union.sort_unstable();
                union.dedup();
                assert_eq!(merge(&[a.clone(), b.clone()]), union);
            }
        }
        assert_eq!(merge(&[]), Vec::<u64>::new());
        assert_eq!(merge(&[vec![4, 9]]), vec![4, 9]);
        assert_eq!(
            merge(&[vec![1, 5], vec![2, 5], vec![0, 9]]),
            vec![0, 1, 2, 5, 9]
        );
    }
}
