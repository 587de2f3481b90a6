//! The closure-diff modules of homeinfra-tui, compiled from the main crate's own sources with
//! the same module paths, so that `crate::model::closure` resolves as it does there.

pub mod model {
    #[path = "../../../../src/model/closure.rs"]
    pub mod closure;
}

pub mod operations {
    pub mod closure_diff {
        #[path = "../../../../../src/operations/closure_diff/classify.rs"]
        pub mod classify;
        #[path = "../../../../../src/operations/closure_diff/parse.rs"]
        pub mod parse;
        #[path = "../../../../../src/operations/closure_diff/render.rs"]
        pub mod render;
    }
}
