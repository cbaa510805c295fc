//! Mapping positions in a rewritten query back to the query the client wrote.
//!
//! Prometheus ends many annotations with the position of the expression they concern,
//! `(line:column)`. When promgate sends a backend a rewritten query, those positions point
//! into the rewritten text. Both texts are cut into tokens and aligned (longest common
//! subsequence); a position at the start of a token that the client's query also has maps to
//! that token's position there.

/// A token: its text and byte offset.
#[derive(Debug, Clone, PartialEq)]
struct Token<'a> {
    text: &'a str,
    at: usize,
}

/// Cuts PromQL into tokens well enough to align two versions of one query: identifiers,
/// numbers, quoted strings and operator characters; whitespace and comments are skipped.
fn tokens(s: &str) -> Vec<Token<'_>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b':' | b'.'))
            {
                i += 1;
            }
        } else if matches!(c, b'"' | b'\'' | b'`') {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                i += if bytes[i] == b'\\' && c != b'`' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
        } else {
            // One character, or two for `=~ != !~ == >= <=`.
            i += 1;
            if i < bytes.len() && bytes[i] == b'='
                || (c == b'=' || c == b'!') && bytes.get(i) == Some(&b'~')
            {
                i += 1;
            }
        }
        // Stay on character boundaries whatever the bytes were.
        while i < bytes.len() && !s.is_char_boundary(i) {
            i += 1;
        }
        out.push(Token {
            text: &s[start..i],
            at: start,
        });
    }
    out
}

/// Aligns the tokens of `rewritten` with those of `original`: for each rewritten token, the
/// original token it stands for, if any.
fn align(original: &[Token<'_>], rewritten: &[Token<'_>]) -> Vec<Option<usize>> {
    let (n, m) = (original.len(), rewritten.len());
    // lcs[i][j]: longest common subsequence of original[i..] and rewritten[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let idx = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[idx(i, j)] = if original[i].text == rewritten[j].text {
                lcs[idx(i + 1, j + 1)] + 1
            } else {
                lcs[idx(i + 1, j)].max(lcs[idx(i, j + 1)])
            };
        }
    }
    let mut map = vec![None; m];
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if original[i].text == rewritten[j].text {
            map[j] = Some(i);
            i += 1;
            j += 1;
        } else if lcs[idx(i + 1, j)] >= lcs[idx(i, j + 1)] {
            i += 1;
        } else {
            j += 1;
        }
    }
    map
}

/// Byte offset of `line:column` (1-based; columns count bytes, as Prometheus's do).
fn offset_of(s: &str, line: usize, column: usize) -> Option<usize> {
    let line_start = if line == 1 {
        0
    } else {
        s.match_indices('\n').nth(line - 2).map(|(i, _)| i + 1)?
    };
    let at = line_start + column.checked_sub(1)?;
    (at <= s.len()).then_some(at)
}

fn line_column(s: &str, offset: usize) -> (usize, usize) {
    let before = &s[..offset.min(s.len())];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Queries longer than this (in tokens) are not aligned: the table would be too large.
const MAX_TOKENS: usize = 2_000;

/// Rewrites the trailing `(line:column)` of each annotation from positions in `rewritten`
/// to positions in `original`; annotations without one, or whose position has no
/// counterpart, are left as they are.
pub fn map_annotation_positions(annotations: &mut [String], original: &str, rewritten: &str) {
    let positioned = |a: &String| a.ends_with(')') && a.rfind(" (").is_some();
    if original == rewritten || !annotations.iter().any(positioned) {
        return;
    }
    let (orig, rew) = (tokens(original), tokens(rewritten));
    if orig.len() > MAX_TOKENS || rew.len() > MAX_TOKENS {
        return;
    }
    let map = align(&orig, &rew);
    for a in annotations.iter_mut() {
        let Some(open) = a.rfind(" (") else { continue };
        if !a.ends_with(')') {
            continue;
        }
        let inner = &a[open + 2..a.len() - 1];
        let Some((l, c)) = inner.split_once(':') else {
            continue;
        };
        let (Ok(line), Ok(column)) = (l.parse::<usize>(), c.parse::<usize>()) else {
            continue;
        };
        let Some(at) = offset_of(rewritten, line, column) else {
            continue;
        };
        let Some(token) = rew.iter().position(|t| t.at == at) else {
            continue;
        };
        let Some(orig_token) = map[token] else {
            continue;
        };
        let (line, column) = line_column(original, orig[orig_token].at);
        *a = format!("{} ({line}:{column})", &a[..open]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(annotation: &str, original: &str, rewritten: &str) -> String {
        let mut a = vec![annotation.to_string()];
        map_annotation_positions(&mut a, original, rewritten);
        a.remove(0)
    }

    #[test]
    fn positions_in_a_wrapped_query_map_back() {
        let original = "sum by (job) (rate(demo_temperature_celsius[5m]))";
        let rewritten = r#"sum by (job) (label_replace(rate(demo_temperature_celsius[5m]), "cluster", "eu1", "cluster", ""))"#;
        let col = rewritten.find("demo_temperature").unwrap() + 1;
        let info = format!("PromQL info: metric might not be a counter (1:{col})");
        assert_eq!(
            mapped(&info, original, rewritten),
            "PromQL info: metric might not be a counter (1:20)"
        );
    }

    #[test]
    fn removed_matchers_and_other_lines_are_handled() {
        let original = "sum(\n  rate(x{cluster=\"eu1\", job=\"a\"}[5m])\n)";
        let rewritten =
            r#"sum(label_replace(rate(x{job="a"}[5m]), "cluster", "eu1", "cluster", ""))"#;
        let col = rewritten.find("x{").unwrap() + 1;
        assert_eq!(
            mapped(&format!("info (1:{col})"), original, rewritten),
            "info (2:8)"
        );
    }

    #[test]
    fn annotations_without_a_counterpart_stay() {
        let original = "sum(x)";
        let rewritten = r#"sum(label_replace(x, "a", "b", "a", ""))"#;
        let col = rewritten.find("label_replace").unwrap() + 1;
        let a = format!("info (1:{col})");
        assert_eq!(mapped(&a, original, rewritten), a);
        assert_eq!(mapped("no position", original, rewritten), "no position");
        assert_eq!(mapped("bad (x:y)", original, rewritten), "bad (x:y)");
    }

    #[test]
    fn tokens_cover_strings_operators_and_unicode() {
        let t: Vec<&str> = tokens(r#"a{b=~"x\"y",c!="é"} >= 1.5e3"#)
            .into_iter()
            .map(|t| t.text)
            .collect();
        assert_eq!(
            t,
            vec![
                "a",
                "{",
                "b",
                "=~",
                "\"x\\\"y\"",
                ",",
                "c",
                "!=",
                "\"é\"",
                "}",
                ">=",
                "1.5e3"
            ]
        );
    }
}
