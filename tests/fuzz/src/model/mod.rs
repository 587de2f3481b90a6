#[path = "../../../../src/model/closure.rs"]
pub mod closure;
