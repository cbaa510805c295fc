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

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_inside_the_parser_is_a_parse_error() {
        assert!(super::parse("rate(up[14444444444444444444440])").is_err());
        assert!(super::parse("rate(up[5m])").is_ok());
    }
}
