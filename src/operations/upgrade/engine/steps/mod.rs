//! The steps of a node's upgrade, one file per step (or pair of steps), each a method of
//! the runner returning a [`StepOutcome`](crate::operations::upgrade::StepOutcome):
//! guards → cordon → drain → arm-revert → switch → confirm → reboot → wait-healthy →
//! make-default (`boot_once`) → (rollback) → uncordon → settle (a drain run: guards → cordon →
//! drain → hold → uncordon); and the run's etcd snapshot before its first node
//! (`snapshot`).

mod boot_once;
mod cordon;
mod drain;
mod guards;
pub mod hold;
mod reboot;
mod revert;
mod rollback;
mod settle;
pub(super) mod snapshot;
mod switch;
mod wait_healthy;

pub(super) use self::guards::verdicts;
