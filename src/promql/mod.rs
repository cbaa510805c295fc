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
