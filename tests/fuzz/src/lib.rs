//! The fuzz targets' checks (see [`checks`]), against the main crate's public API.

pub mod checks;
