//! The headless `upgrade` command.
