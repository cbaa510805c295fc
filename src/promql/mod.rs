//! PromQL in promgate: deciding how a parsed query is answered by the replica groups
//! (which groups, what each is sent, whether the concatenation of their answers is exact),
//! and the parse/format endpoints' views of a query.

pub mod ast_json;
mod groups;

pub use groups::{
    Exactness, ExternalLabels, GroupPlan, GroupQuery, ResultOrder, plan_groups,
    rewrite_selector_for_group,
};

/// `/api/v1/format_query`: the query as Prometheus's formatter prints it.
pub fn format_query(expr: &promql_parser::parser::Expr) -> String {
    expr.prettify()
}
