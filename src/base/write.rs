//! The write capability (STYLE.md rule 12): everything that changes the cluster or a host — a
//! cordon, an uncordon, an eviction, the upgrade lock's Lease, a switch, a rollback, a reboot,
//! a new run's journal — can only be built from a [`Writes`]. `--read-only` never creates one.
//!
//! There is exactly one constructor, [`Writes::unless_read_only`], and exactly one caller in
//! the release build: `commands::load`, from the command-line flag (`tests/offline/layering.rs`
//! checks that no other code in `src/` calls it; `testing::writes` is the tests' own, compiled
//! only with the `test-util` feature). Lower layers take it by reference, or need it to build
//! their writer types (`KubeWriter`, `SshWriter`, `Journal::create`, `HostsClient::run`).

/// Proof that this process may change things outside itself. Cannot be made from nothing:
/// its field is private and its only constructor is [`Writes::unless_read_only`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writes {
    _private: (),
}

impl Writes {
    /// The capability, unless the operator asked for `--read-only`. Called once, in
    /// `commands::load` (see the module docs).
    pub fn unless_read_only(read_only: bool) -> Option<Writes> {
        (!read_only).then_some(Writes { _private: () })
    }
}
