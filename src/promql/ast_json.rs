//! The AST as `/api/v1/parse_query` returns it, and the text `/api/v1/format_query` returns.
//!
//! The JSON shape is Prometheus 3.5's (`web/api/v1/translate_ast.go`): one object per node with
//! a `type` of `aggregation`, `binaryExpr`, `call`, `matrixSelector`, `subquery`,
//! `numberLiteral`, `parenExpr`, `stringLiteral`, `unaryExpr` or `vectorSelector`. Durations and
//! offsets are milliseconds, `@` is `timestamp` (milliseconds) or `startOrEnd`, numbers are
//! strings in Go's shortest non-exponent form (`"1000000"`, `"+Inf"`, `"NaN"`), and a selector
//! with a metric name lists it as a trailing `__name__` equality matcher, as Prometheus does.
//! Every node's keys are emitted; `serde_json` sorts them like Go's map encoding. Go escapes
//! `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` in strings; the parsed values are equal.
//!
//! Checked against a running Prometheus 3.5.3 (`tests` below hold the queries and the JSON it
//! returned). Differences that come from promql-parser accepting or normalising more than
//! Prometheus 3.5 does:
//!
//! * Unary plus: promql-parser drops it (`+foo` is `foo`), Prometheus keeps a `unaryExpr` with
//!   op `"+"`; `format_query` prints `+foo`, this module prints `foo`.
//! * Syntax Prometheus 3.5 rejects and promql-parser accepts (`or` inside selectors, the
//!   `fill(...)` binary modifiers, the duration functions): `or` alternatives are listed as one
//!   flat matcher list, `fill` is not represented. Extension nodes become `null`.
//!
//! `format_query` differences between promql-parser's `prettify()` and Prometheus 3.5 are listed
//! on [`format_query`].

use std::time::{Duration, SystemTime};

use promql_parser::label::{Labels, MatchOp, Matcher, Matchers};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};
use promql_parser::util::display_duration;
use serde_json::{Value, json};

/// The JSON Prometheus 3.5's `/api/v1/parse_query` returns as `data` for this expression.
pub fn ast_to_json(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (vec![], false),
            };
            json!({
                "expr": ast_to_json(&a.expr),
                "grouping": grouping,
                "op": a.op.to_string(),
                "param": a.param.as_deref().map_or(Value::Null, ast_to_json),
                "type": "aggregation",
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let both_vectors =
                b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
            let matching = if both_vectors {
                binary_matching(b)
            } else {
                Value::Null
            };
            json!({
                "bool": b.return_bool(),
                "lhs": ast_to_json(&b.lhs),
                "matching": matching,
                "op": b.op.to_string(),
                "rhs": ast_to_json(&b.rhs),
                "type": "binaryExpr",
            })
        }
        Expr::Call(c) => {
            let (arg_types, variadic, return_type) =
                function_signature(&c.func.arg_types, c.func.variadic, c.func.return_type);
            json!({
                "args": c.args.args.iter().map(|a| ast_to_json(a)).collect::<Vec<_>>(),
                "func": {
                    "argTypes": arg_types,
                    "name": c.func.name,
                    "returnType": return_type,
                    "variadic": variadic,
                },
                "type": "call",
            })
        }
        Expr::MatrixSelector(m) => {
            let mut v = selector_json(&m.vs, "matrixSelector");
            v["range"] = json!(millis(&m.range));
            v
        }
        Expr::Subquery(s) => json!({
            "expr": ast_to_json(&s.expr),
            "offset": offset_millis(s.offset.as_ref()),
            "range": millis(&s.range),
            "startOrEnd": start_or_end(s.at.as_ref()),
            "step": s.step.as_ref().map_or(0, millis),
            "timestamp": at_timestamp(s.at.as_ref()),
            "type": "subquery",
        }),
        Expr::NumberLiteral(n) => json!({ "type": "numberLiteral", "val": go_float(n.val) }),
        Expr::StringLiteral(s) => json!({ "type": "stringLiteral", "val": s.val }),
        Expr::Paren(p) => json!({ "expr": ast_to_json(&p.expr), "type": "parenExpr" }),
        Expr::Unary(u) => json!({ "expr": ast_to_json(&u.expr), "op": "-", "type": "unaryExpr" }),
        Expr::VectorSelector(vs) => selector_json(vs, "vectorSelector"),
        Expr::Extension(_) => Value::Null,
    }
}

fn binary_matching(b: &promql_parser::parser::BinaryExpr) -> Value {
    let modifier = b.modifier.clone().unwrap_or_default();
    let (card, include) = match &modifier.card {
        VectorMatchCardinality::OneToOne => ("one-to-one", vec![]),
        VectorMatchCardinality::ManyToOne(l) => ("many-to-one", l.labels.clone()),
        VectorMatchCardinality::OneToMany(l) => ("one-to-many", l.labels.clone()),
        VectorMatchCardinality::ManyToMany => ("many-to-many", vec![]),
    };
    let (labels, on) = match &modifier.matching {
        Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
        Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
        None => (vec![], false),
    };
    json!({ "card": card, "include": include, "labels": labels, "on": on })
}

fn selector_json(vs: &VectorSelector, kind: &str) -> Value {
    json!({
        "matchers": matchers_json(vs),
        "name": vs.name.as_deref().unwrap_or(""),
        "offset": offset_millis(vs.offset.as_ref()),
        "startOrEnd": start_or_end(vs.at.as_ref()),
        "timestamp": at_timestamp(vs.at.as_ref()),
        "type": kind,
    })
}

fn matchers_json(vs: &VectorSelector) -> Value {
    let Matchers {
        matchers,
        or_matchers,
    } = &vs.matchers;
    let one = |m: &Matcher| {
        let op = match m.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        json!({ "name": m.name, "type": op, "value": m.value })
    };
    let mut out: Vec<Value> = matchers
        .iter()
        .chain(or_matchers.iter().flatten())
        .map(one)
        .collect();
    if let Some(name) = &vs.name {
        out.push(json!({ "name": "__name__", "type": "=", "value": name }));
    }
    Value::Array(out)
}

fn millis(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_millis(o: Option<&Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => -millis(d),
        None => 0,
    }
}

fn at_timestamp(at: Option<&AtModifier>) -> Value {
    match at {
        Some(AtModifier::At(t)) => json!(match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => millis(&d),
            Err(before) => -millis(&before.duration()),
        }),
        _ => Value::Null,
    }
}

fn start_or_end(at: Option<&AtModifier>) -> Value {
    match at {
        Some(AtModifier::Start) => json!("start"),
        Some(AtModifier::End) => json!("end"),
        _ => Value::Null,
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, no exponent.
/// Rust's `Display` for `f64` is the same except for the infinities.
fn go_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        v.to_string()
    }
}

fn value_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "matrix",
        ValueType::String => "string",
    }
}

/// `(argTypes, variadic, returnType)` of a function. promql-parser's table agrees with
/// Prometheus 3.5's for all 80 functions 3.5 knows (checked one by one).
fn function_signature(
    arg_types: &[ValueType],
    variadic: i32,
    return_type: ValueType,
) -> (Vec<&'static str>, i32, &'static str) {
    let types = arg_types.iter().map(|t| value_type_name(*t)).collect();
    (types, variadic, value_type_name(return_type))
}

// === PromQL text ===

/// Lines longer than this are split by [`format_query`], as in Prometheus.
const MAX_LINE: usize = 100;
const INDENT: &str = "  ";

/// The text Prometheus 3.5's `/api/v1/format_query` returns for this expression.
///
/// promql-parser's own `prettify()` follows the same algorithm but differs from Prometheus
/// 3.5 in what it prints for: `+Inf` (it prints `Inf`); negative `@` timestamps (it prints
/// `@ 0.000`, losing the time); strings and label values with control characters other than
/// `\n`, `\r`, `\t` (Go quotes them as `\a`, `\x00`, `\u00a0`, …); and a short subquery under a
/// split parent (Prometheus prints it without indentation). This function prints what
/// Prometheus prints in all these cases. It deliberately differs where Prometheus's output
/// would not parse back or would mean something else: `ignoring ()` is kept when followed by
/// `group_left`/`group_right`, and label names in `on`/`ignoring`/`group_*` lists are quoted
/// when they are not plain identifiers. Unary plus cannot be printed: the parser drops it.
pub fn format_query(expr: &Expr) -> String {
    pretty(expr, 0)
}

/// The expression as one line of PromQL, printed like Prometheus's `String()`; parsing the
/// result gives back the same expression.
pub fn to_promql(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(expr, &mut out);
    out
}

fn indent(level: usize) -> String {
    INDENT.repeat(level)
}

fn pretty(e: &Expr, level: usize) -> String {
    let line = to_promql(e);
    if line.len() <= MAX_LINE {
        // Prometheus does not indent a subquery that fits on its line.
        return match e {
            Expr::Subquery(_) => line,
            _ => format!("{}{line}", indent(level)),
        };
    }
    let ind = indent(level);
    match e {
        Expr::Aggregate(a) => {
            let mut s = format!("{ind}{}(\n", aggregate_op(a));
            if let Some(p) = &a.param {
                s.push_str(&pretty(p, level + 1));
                s.push_str(",\n");
            }
            format!("{s}{}\n{ind})", pretty(&a.expr, level + 1))
        }
        Expr::Binary(b) => format!(
            "{}\n{ind}{}\n{}",
            pretty(&b.lhs, level + 1),
            binary_op(b),
            pretty(&b.rhs, level + 1)
        ),
        Expr::Call(c) => {
            let args: Vec<String> = c.args.args.iter().map(|a| pretty(a, level + 1)).collect();
            format!("{ind}{}(\n{}\n{ind})", c.func.name, args.join(",\n"))
        }
        Expr::Paren(p) => format!("{ind}(\n{}\n{ind})", pretty(&p.expr, level + 1)),
        Expr::Subquery(sq) => {
            let mut s = pretty(&sq.expr, level);
            write_subquery_suffix(sq, &mut s);
            s
        }
        Expr::Unary(u) => format!("{ind}-{}", pretty(&u.expr, level).trim()),
        _ => format!("{ind}{line}"),
    }
}

fn write_expr(e: &Expr, out: &mut String) {
    match e {
        Expr::Aggregate(a) => {
            out.push_str(&aggregate_op(a));
            out.push('(');
            if let Some(p) = &a.param {
                write_expr(p, out);
                out.push_str(", ");
            }
            write_expr(&a.expr, out);
            out.push(')');
        }
        Expr::Binary(b) => {
            write_expr(&b.lhs, out);
            out.push(' ');
            out.push_str(&binary_op(b));
            out.push(' ');
            write_expr(&b.rhs, out);
        }
        Expr::Call(c) => {
            out.push_str(c.func.name);
            out.push('(');
            for (i, a) in c.args.args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(a, out);
            }
            out.push(')');
        }
        Expr::MatrixSelector(m) => {
            write_selector_body(&m.vs, out);
            out.push('[');
            out.push_str(&display_duration(&m.range));
            out.push(']');
            write_at_offset(m.vs.at.as_ref(), m.vs.offset.as_ref(), out);
        }
        Expr::Subquery(sq) => {
            write_expr(&sq.expr, out);
            write_subquery_suffix(sq, out);
        }
        Expr::NumberLiteral(n) => out.push_str(&go_float(n.val)),
        Expr::StringLiteral(s) => out.push_str(&go_quote(&s.val)),
        Expr::Paren(p) => {
            out.push('(');
            write_expr(&p.expr, out);
            out.push(')');
        }
        Expr::Unary(u) => {
            out.push('-');
            write_expr(&u.expr, out);
        }
        Expr::VectorSelector(vs) => {
            write_selector_body(vs, out);
            write_at_offset(vs.at.as_ref(), vs.offset.as_ref(), out);
        }
        Expr::Extension(_) => out.push_str(&e.to_string()),
    }
}

fn aggregate_op(a: &AggregateExpr) -> String {
    match &a.modifier {
        Some(LabelModifier::Exclude(l)) => format!("{} without ({}) ", a.op, label_list(l)),
        Some(LabelModifier::Include(l)) if !l.labels.is_empty() => {
            format!("{} by ({}) ", a.op, label_list(l))
        }
        _ => a.op.to_string(),
    }
}

/// The operator with `bool` and vector matching, e.g. `/ on (job) group_left (x)`.
fn binary_op(b: &BinaryExpr) -> String {
    let mut s = b.op.to_string();
    if b.return_bool() {
        s.push_str(" bool");
    }
    let Some(m) = &b.modifier else {
        return s;
    };
    let group = match &m.card {
        VectorMatchCardinality::ManyToOne(l) => Some(("group_left", l)),
        VectorMatchCardinality::OneToMany(l) => Some(("group_right", l)),
        _ => None,
    };
    let matching = match &m.matching {
        Some(LabelModifier::Include(l)) => Some(("on", l)),
        Some(LabelModifier::Exclude(l)) if !l.labels.is_empty() || group.is_some() => {
            Some(("ignoring", l))
        }
        _ => None,
    };
    if let Some((kw, l)) = matching {
        s.push_str(&format!(" {kw} ({})", label_list(l)));
        if let Some((kw, l)) = group {
            s.push_str(&format!(" {kw} ({})", label_list(l)));
        }
    }
    s
}

fn label_list(l: &Labels) -> String {
    let names: Vec<String> = l.labels.iter().map(|n| label_name(n)).collect();
    names.join(", ")
}

/// A label name as PromQL accepts it: bare when it is a plain identifier, quoted otherwise.
fn label_name(n: &str) -> String {
    let plain = !n.is_empty()
        && n.char_indices()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
    if plain { n.to_string() } else { go_quote(n) }
}

fn write_selector_body(vs: &VectorSelector, out: &mut String) {
    if let Some(name) = &vs.name {
        out.push_str(name);
    }
    let conj = |ms: &[Matcher]| {
        let mut parts: Vec<String> = ms.iter().map(matcher_text).collect();
        parts.sort();
        parts.join(",")
    };
    let m = &vs.matchers;
    if !m.or_matchers.is_empty() {
        let alts: Vec<String> = m.or_matchers.iter().map(|a| conj(a)).collect();
        out.push_str(&format!("{{{}}}", alts.join(" or ")));
    } else if !m.matchers.is_empty() {
        out.push_str(&format!("{{{}}}", conj(&m.matchers)));
    }
}

fn matcher_text(m: &Matcher) -> String {
    format!("{}{}{}", label_name(&m.name), m.op, go_quote(&m.value))
}

fn write_at_offset(at: Option<&AtModifier>, offset: Option<&Offset>, out: &mut String) {
    match at {
        Some(AtModifier::At(t)) => {
            let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => i128::try_from(d.as_millis()).unwrap_or(i128::MAX),
                Err(before) => -i128::try_from(before.duration().as_millis()).unwrap_or(0),
            };
            let sign = if ms < 0 { "-" } else { "" };
            let abs = ms.unsigned_abs();
            out.push_str(&format!(" @ {sign}{}.{:03}", abs / 1000, abs % 1000));
        }
        Some(AtModifier::Start) => out.push_str(" @ start()"),
        Some(AtModifier::End) => out.push_str(" @ end()"),
        None => {}
    }
    match offset {
        Some(Offset::Pos(d)) if !d.is_zero() => {
            out.push_str(&format!(" offset {}", display_duration(d)));
        }
        Some(Offset::Neg(d)) if !d.is_zero() => {
            out.push_str(&format!(" offset -{}", display_duration(d)));
        }
        _ => {}
    }
}

fn write_subquery_suffix(sq: &SubqueryExpr, out: &mut String) {
    let step = match sq.step {
        Some(d) if !d.is_zero() => display_duration(&d),
        _ => String::new(),
    };
    out.push_str(&format!("[{}:{step}]", display_duration(&sq.range)));
    write_at_offset(sq.at.as_ref(), sq.offset.as_ref(), out);
}

/// Format (Cf) and private-use characters, which Go's `unicode.IsPrint` rejects besides
/// controls and white space. Unassigned code points are not known here and stay unescaped.
fn not_printable(c: char) -> bool {
    matches!(c as u32,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2 | 0x180e
        | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xe000..=0xf8ff
        | 0xfeff | 0xfff9..=0xfffb | 0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..=0x10ffff)
}

/// Go's `strconv.Quote`: printable characters as they are, the rest escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || c.is_whitespace() || not_printable(c) => {
                let cp = c as u32;
                if cp < 0x10000 {
                    out.push_str(&format!("\\u{cp:04x}"));
                } else {
                    out.push_str(&format!("\\U{cp:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
