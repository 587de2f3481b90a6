//! The closure-diff modules of homeinfra-tui, compiled from the main crate's own sources with
//! the same module paths, so that `crate::model::closure` resolves as it does there.

pub mod model;
pub mod operations;
