//! Real implementations of the world traits.
