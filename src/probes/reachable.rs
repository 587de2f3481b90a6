//! The reachability probe: can we log in and run a command right now.

use super::{Kind, Probe, ProbeError, Reply};

/// `true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReachableProbe;

impl Probe for ReachableProbe {
    type Output = ();
    const KIND: Kind = Kind::Reachable;

    fn command(&self) -> String {
        "true".into()
    }

    fn parse(&self, reply: &Reply) -> Result<(), ProbeError> {
        reply.require_success(Self::KIND)
    }

    fn render(&self, _: &()) -> Reply {
        Reply::ok("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fails_on_a_bad_exit() {
        assert_eq!(ReachableProbe.parse(&ReachableProbe.render(&())), Ok(()));
        let r = Reply {
            exit_status: Some(1),
            ..Default::default()
        };
        assert!(ReachableProbe.parse(&r).is_err());
    }
}
