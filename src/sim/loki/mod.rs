//! Loki face.
