pub mod closure_diff;
