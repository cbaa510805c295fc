//! PromQL: planning queries over replica groups, and the parse/format endpoints' views of the
//! AST. Parsing itself is promql-parser's.

pub mod ast_json;
pub mod cache;
pub mod engine;
pub mod groups;
mod positions;
pub mod pushdown;

pub use ast_json::{ast_to_json, format_query, to_promql};
pub use groups::{
    Exactness, ExternalLabels, GroupPlan, GroupQuery, GroupSelectors, ResultOrder,
    parse_match_selector, plan_groups, plan_match_selectors, rewrite_selector_for_group,
};
pub use positions::map_annotation_positions;

/// Parses a query with promql-parser, turning a panic inside the parser (it has some, e.g.
/// on durations too large for a `Duration`) into a parse error.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, String> {
    std::panic::catch_unwind(|| promql_parser::parser::parse(query)).unwrap_or_else(|_| {
        Err("the query could not be parsed (a number or duration out of range?)".into())
    })
}

/// Whether the answer depends on a hash of every label of a series (`limit_ratio` samples
/// by it): a server that does not see the external labels picks other series than one that
/// holds them as ordinary labels, so such a query is evaluated by promgate.
pub fn hashes_labels(expr: &promql_parser::parser::Expr) -> bool {
    use promql_parser::parser::Expr;
    match expr {
        Expr::Aggregate(a) => {
            a.op.to_string() == "limit_ratio"
                || hashes_labels(&a.expr)
                || a.param.as_deref().is_some_and(hashes_labels)
        }
        Expr::Unary(u) => hashes_labels(&u.expr),
        Expr::Binary(b) => hashes_labels(&b.lhs) || hashes_labels(&b.rhs),
        Expr::Paren(p) => hashes_labels(&p.expr),
        Expr::Subquery(s) => hashes_labels(&s.expr),
        Expr::Call(c) => c.args.args.iter().any(|a| hashes_labels(a)),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn limit_ratio_anywhere_hashes_labels() {
        for (query, expected) in [
            ("limit_ratio(0.5, up)", true),
            ("sum(limit_ratio by (job) (0.1, rate(x[5m])))", true),
            ("max_over_time(limit_ratio(0.5, up)[5m:])", true),
            ("1 + -limit_ratio(0.5, up)", true),
            ("limitk(2, up)", false),
            ("sum(rate(x[5m])) / 2", false),
        ] {
            let expr = super::parse(query).unwrap();
            assert_eq!(super::hashes_labels(&expr), expected, "{query}");
        }
    }

    #[test]
    fn a_panic_inside_the_parser_is_a_parse_error() {
        assert!(super::parse("rate(up[14444444444444444444440])").is_err());
        assert!(super::parse("rate(up[5m])").is_ok());
    }
}
