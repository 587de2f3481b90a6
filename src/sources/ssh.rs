//! Hosts over SSH (hosts issue).
