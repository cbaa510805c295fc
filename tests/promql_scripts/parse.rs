//! Reads the script language: commands, series descriptions, value expansions, durations.
//!
//! Like Prometheus's runner, every line is trimmed and a line starting with `#` counts as
//! blank, so indentation is not significant and a comment ends a block.

use std::sync::LazyLock;

use regex::Regex;

use super::{
    Command, Eval, EvalKind, Expectations, Expected, ExpectedSeries, LabelPairs, Load, LoadSeries,
    TextMatch,
};

/// The bit pattern Prometheus writes for a staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

static INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+at\s+(\S+)\s+(.+)$")
        .expect("constant regex")
});
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+)$",
    )
    .expect("constant regex")
});

/// A parsed script: its commands (each with its line) and the lines it could not read
/// outside an eval (a bad load line, an unknown command).
#[derive(Debug, Default)]
pub struct Script {
    pub commands: Vec<Command>,
    pub errors: Vec<(usize, String)>,
}

pub fn parse_script(text: &str) -> Script {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') { "" } else { l }
        })
        .collect();
    let mut script = Script::default();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let first = line.split_whitespace().next().unwrap_or("");
        // The block of a command runs to the next blank line.
        let mut end = i + 1;
        while end < lines.len() && !lines[end].is_empty() {
            end += 1;
        }
        let body: Vec<(usize, &str)> = (i + 1..end).map(|j| (j + 1, lines[j])).collect();
        match first.to_ascii_lowercase().as_str() {
            "" => {
                i += 1;
                continue;
            }
            // `clear` has no body: the next line may start a command of its own.
            "clear" => {
                script.commands.push(Command::Clear);
                i += 1;
                continue;
            }
            "load" | "load_with_nhcb" => match parse_load(i + 1, line, &body) {
                Ok(load) => script.commands.push(Command::Load(load)),
                Err(e) => script.errors.push(e),
            },
            c if c.starts_with("eval") => {
                script
                    .commands
                    .push(Command::Eval(Box::new(parse_eval(i + 1, line, &body))));
            }
            _ => script
                .errors
                .push((i + 1, format!("unknown command {line:?}"))),
        }
        i = end;
    }
    script
}

fn parse_load(
    line_no: usize,
    header: &str,
    body: &[(usize, &str)],
) -> Result<Load, (usize, String)> {
    let mut words = header.split_whitespace();
    let nhcb = words.next() == Some("load_with_nhcb");
    let interval = words
        .next()
        .ok_or((line_no, "load without an interval".to_string()))?;
    let interval_ms = parse_duration_ms(interval).map_err(|e| (line_no, e))?;
    let mut series = Vec::new();
    for &(n, line) in body {
        let (labels, rest) = parse_series_labels(line).map_err(|e| (n, e))?;
        if rest.contains("{{") {
            series.push(LoadSeries {
                labels,
                samples: Vec::new(),
                histogram: true,
            });
            continue;
        }
        let values = expand_values(rest).map_err(|e| (n, e))?;
        let samples = values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (k as i64 * interval_ms, v)))
            .collect();
        series.push(LoadSeries {
            labels,
            samples,
            histogram: false,
        });
    }
    Ok(Load { nhcb, series })
}

/// Reads an eval; a problem in any of its lines goes into `error` so that only this eval is
/// lost.
pub fn parse_eval(line_no: usize, header: &str, body: &[(usize, &str)]) -> Eval {
    let mut eval = Eval {
        line: line_no,
        expr: String::new(),
        kind: EvalKind::Instant { at_ms: 0 },
        expect: Expectations::default(),
        expected: Expected::Series(Vec::new()),
        error: None,
        histogram_expected: false,
    };
    if let Err(e) = parse_eval_into(&mut eval, header, body) {
        eval.error = Some(e);
    }
    eval
}

fn parse_eval_into(eval: &mut Eval, header: &str, body: &[(usize, &str)]) -> Result<(), String> {
    let variant = if let Some(c) = INSTANT.captures(header) {
        eval.kind = EvalKind::Instant {
            at_ms: parse_duration_ms(&c[2])?,
        };
        eval.expr = c[3].to_string();
        c.get(1).map(|m| m.as_str().to_string())
    } else if let Some(c) = RANGE.captures(header) {
        eval.kind = EvalKind::Range {
            start_ms: parse_duration_ms(&c[2])?,
            end_ms: parse_duration_ms(&c[3])?,
            step_ms: parse_duration_ms(&c[4])?,
        };
        eval.expr = c[5].to_string();
        c.get(1).map(|m| m.as_str().to_string())
    } else {
        // Keep whatever follows the keyword as the query so the report can show it.
        eval.expr = header.to_string();
        return Err(format!("invalid eval header {header:?}"));
    };
    match variant.as_deref() {
        Some("fail") => eval.expect.fail = Some(TextMatch::Any),
        Some("warn") => eval.expect.warn = Some(TextMatch::Any),
        Some("info") => eval.expect.info = Some(TextMatch::Any),
        Some("ordered") => eval.expect.ordered = true,
        _ => {}
    }
    let instant = matches!(eval.kind, EvalKind::Instant { .. });
    let mut series: Vec<ExpectedSeries> = Vec::new();
    let mut other: Option<Expected> = None;
    for &(n, line) in body {
        let at = |e: String| format!("line {n}: {e}");
        if let Some(msg) = line.strip_prefix("expected_fail_message") {
            eval.expect.fail = Some(TextMatch::Exact(msg.trim().to_string()));
            continue;
        }
        if let Some(re) = line.strip_prefix("expected_fail_regexp") {
            eval.expect.fail = Some(TextMatch::Regex(re.trim().to_string()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("expect ") {
            if let Some(s) = parse_expect_line(&mut eval.expect, rest.trim()).map_err(at)? {
                other = Some(Expected::String(s));
            }
            continue;
        }
        if let Ok(v) = parse_number(line) {
            other = Some(Expected::Scalar(v));
            continue;
        }
        if line.starts_with('"') || line.starts_with('\'') || line.starts_with('`') {
            other = Some(Expected::String(unquote(line).map_err(at)?));
            continue;
        }
        let (labels, rest) = parse_series_labels(line).map_err(at)?;
        if rest.contains("{{") {
            eval.histogram_expected = true;
            continue;
        }
        let values = expand_values(rest).map_err(at)?;
        if instant && values.len() != 1 {
            return Err(at(format!(
                "an instant eval expects one value per series, got {}",
                values.len()
            )));
        }
        if series.iter().any(|s| s.labels == labels) {
            return Err(at(format!("series {labels:?} expected twice")));
        }
        series.push(ExpectedSeries { labels, values });
    }
    eval.expected = match other {
        Some(_) if !series.is_empty() => {
            return Err("mixes a scalar or string result with series".into());
        }
        Some(o) => o,
        None => Expected::Series(series),
    };
    Ok(())
}

/// `expect <kind> [msg: text | regex: pattern]`; returns the string of `expect string`.
fn parse_expect_line(expect: &mut Expectations, rest: &str) -> Result<Option<String>, String> {
    let (kind, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let tail = tail.trim();
    let text = if tail.is_empty() {
        TextMatch::Any
    } else if let Some(m) = tail.strip_prefix("msg:") {
        TextMatch::Exact(m.trim().to_string())
    } else if let Some(r) = tail.strip_prefix("regex:") {
        TextMatch::Regex(r.trim().to_string())
    } else if kind == "string" {
        return unquote(tail).map(Some);
    } else {
        return Err(format!("cannot read {tail:?} after expect {kind}"));
    };
    match kind {
        "fail" => expect.fail = Some(text),
        "warn" => expect.warn = Some(text),
        "info" => expect.info = Some(text),
        "no_warn" => expect.no_warn = true,
        "no_info" => expect.no_info = true,
        "ordered" => expect.ordered = true,
        _ => return Err(format!("unknown expectation {kind:?}")),
    }
    Ok(None)
}

/// A Prometheus duration (`5m`, `1h30m`, `10s53ms`); a bare number is seconds, as the
/// scripts' `from 0 to 24m` relies on.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() {
            return Ok((secs * 1000.0).round() as i64);
        }
    }
    let bad = || format!("invalid duration {s:?}");
    let mut rest = s;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let unit = match rest.bytes().next() {
                Some(b'y') => 365 * 86_400_000,
                Some(b'w') => 7 * 86_400_000,
                Some(b'd') => 86_400_000,
                Some(b'h') => 3_600_000,
                Some(b'm') => 60_000,
                Some(b's') => 1000,
                _ => return Err(bad()),
            };
            (unit, 1)
        };
        rest = &rest[len..];
        total = n
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// A number as Go reads one: integers with a `0x`/`0o`/`0b`/leading-`0` base prefix, then
/// floats including `Inf`, `NaN`, exponents and hex floats (`0x1p-2`).
pub fn parse_number(s: &str) -> Result<f64, String> {
    let bad = || format!("invalid number {s:?}");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return Err(bad());
    }
    let sign = if neg { -1.0 } else { 1.0 };
    let lower = body.to_ascii_lowercase();
    if let Some(int) = parse_prefixed_int(&lower) {
        return Ok(sign * int as f64);
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        return parse_hex_float(hex).map(|v| sign * v).ok_or_else(bad);
    }
    parse_decimal(&lower).map(|v| sign * v).ok_or_else(bad)
}

/// An unsigned decimal float or `inf`/`infinity`/`nan` (any case). Rust's float syntax
/// accepts more words than Go's, hence the character check.
fn parse_decimal(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let ok_chars = lower
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
    if ok_chars || matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return lower.parse::<f64>().ok();
    }
    None
}

/// A number in a series description: a sign, then a decimal float or `Inf`/`NaN`. The
/// lexer reads these as floats, so unlike [`parse_number`] there is no octal or hex.
fn parse_series_number(s: &str) -> Option<f64> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    parse_decimal(body).map(|v| sign * v)
}

fn parse_prefixed_int(s: &str) -> Option<u64> {
    let (radix, digits) = if let Some(d) = s.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = s.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = s.strip_prefix("0b") {
        (2, d)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

/// `h.hhhp±d` after the `0x`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// Reads the series at the start of `line` (`name`, `name{a="b"}`, `{__name__="m"}`,
/// `{"utf8.name", a="b"}`) and returns its labels sorted by name plus the rest of the line.
/// Only `=` is allowed: this describes a series, it does not select one.
pub fn parse_series_labels(line: &str) -> Result<(LabelPairs, &str), String> {
    let mut pairs: LabelPairs = Vec::new();
    let name_len = line
        .char_indices()
        .find(|&(i, c)| {
            !(c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        })
        .map_or(line.len(), |(i, _)| i);
    if name_len > 0 {
        pairs.push(("__name__".into(), line[..name_len].to_string()));
    }
    let mut rest = &line[name_len..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (name, quoted, after) = read_name(rest)?;
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix('=') {
                if after.starts_with('=') || after.starts_with('~') {
                    return Err(format!(
                        "only = is allowed in a series description: {line:?}"
                    ));
                }
                let (value, after) = read_quoted(after.trim_start())?;
                pairs.push((name, value));
                rest = after.trim_start();
            } else if quoted {
                // A lone quoted string inside the braces is the metric name.
                pairs.push(("__name__".into(), name));
            } else {
                return Err(format!("expected = after label {name:?} in {line:?}"));
            }
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected , or }} in {line:?}"));
            }
        }
    } else if name_len == 0 {
        return Err(format!("no series at the start of {line:?}"));
    }
    pairs.sort();
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(format!("a label appears twice in {line:?}"));
    }
    Ok((pairs, rest.trim_start()))
}

/// A label name, bare or quoted; the flag says it was quoted.
fn read_name(s: &str) -> Result<(String, bool, &str), String> {
    if s.starts_with(['"', '\'', '`']) {
        let (v, rest) = read_quoted(s)?;
        return Ok((v, true, rest));
    }
    let len = s
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i);
    if len == 0 {
        return Err(format!("expected a label name at {s:?}"));
    }
    Ok((s[..len].to_string(), false, &s[len..]))
}

/// A quoted string at the start of `s` and what follows it.
fn read_quoted(s: &str) -> Result<(String, &str), String> {
    let quote = s
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))
        .ok_or_else(|| format!("expected a quoted string at {s:?}"))?;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != '`' {
            escaped = true;
        } else if c == quote {
            return Ok((unquote(&s[..=i])?, &s[i + 1..]));
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// Go's string unquoting for `"…"`, `'…'` and raw `` `…` ``.
pub fn unquote(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid string {s:?}: {why}");
    let quote = s.chars().next().ok_or_else(|| bad("empty"))?;
    if s.len() < 2 || !s.ends_with(quote) || !matches!(quote, '"' | '\'' | '`') {
        return Err(bad("not quoted"));
    }
    let inner = &s[1..s.len() - 1];
    if quote == '`' {
        return Ok(inner.to_string());
    }
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return Err(bad("unescaped quote"));
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = chars.next().ok_or_else(|| bad("trailing backslash"))?;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '"' | '\'' => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let mut take = |n: usize, radix: u32| -> Result<u32, String> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n {
                return Err(bad("short escape"));
            }
            u32::from_str_radix(&digits, radix).map_err(|_| bad("bad escape digits"))
        };
        match e {
            'x' => out.push(take(2, 16)? as u8),
            '0'..='7' => {
                let rest = take(2, 8)?;
                let v = (e as u32 - '0' as u32) * 64 + rest;
                out.push(u8::try_from(v).map_err(|_| bad("octal escape above 255"))?);
            }
            'u' | 'U' => {
                let v = take(if e == 'u' { 4 } else { 8 }, 16)?;
                let c = char::from_u32(v).ok_or_else(|| bad("invalid code point"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(bad("unknown escape")),
        }
    }
    // Byte escapes can make invalid UTF-8, which a label value cannot hold here.
    String::from_utf8(out).map_err(|_| bad("not valid UTF-8"))
}

/// Expands a values field (`1 2 _ 3+1x2 stale _x3 NaN`) into one entry per step, `None`
/// where there is no sample.
pub fn expand_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in s.split_whitespace() {
        expand_item(item, &mut out)?;
    }
    Ok(out)
}

fn expand_item(item: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    let bad = || format!("invalid series value {item:?}");
    if item == "_" {
        out.push(None);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| bad())?;
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    if item == "stale" {
        out.push(Some(f64::from_bits(STALE_NAN_BITS)));
        return Ok(());
    }
    let (start, rest) = split_number(item).ok_or_else(bad)?;
    let start = parse_series_number(start).ok_or_else(bad)?;
    if rest.is_empty() {
        out.push(Some(start));
        return Ok(());
    }
    // `axN` repeats a; `a+bxN` / `a-bxN` step by b; both give N+1 values.
    let (delta, times) = if let Some(n) = rest.strip_prefix('x') {
        (0.0, n)
    } else {
        let sign = match rest.as_bytes()[0] {
            b'+' => 1.0,
            b'-' => -1.0,
            _ => return Err(bad()),
        };
        let (delta, after) = split_number(&rest[1..]).ok_or_else(bad)?;
        let delta = parse_series_number(delta).ok_or_else(bad)?;
        (sign * delta, after.strip_prefix('x').ok_or_else(bad)?)
    };
    let times: usize = times.parse().map_err(|_| bad())?;
    let mut v = start;
    for _ in 0..=times {
        out.push(Some(v));
        v += delta;
    }
    Ok(())
}

/// Splits a leading number (with optional sign) off `s`: decimal with fraction and
/// exponent, or the words `Inf`/`NaN`. No hex here: in a series description `0x5` is zero
/// repeated, as `0+0x10` in the scripts shows.
fn split_number(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let word = &s[i..];
    for w in ["inf", "nan"] {
        if word.len() >= 3 && word[..3].eq_ignore_ascii_case(w) {
            return Some((&s[..i + 3], &s[i + 3..]));
        }
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i > start && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    (i > start).then(|| (&s[..i], &s[i..]))
}
