#[path = "../../../../../src/operations/closure_diff/classify.rs"]
pub mod classify;
#[path = "../../../../../src/operations/closure_diff/parse.rs"]
pub mod parse;
#[path = "../../../../../src/operations/closure_diff/render.rs"]
pub mod render;
