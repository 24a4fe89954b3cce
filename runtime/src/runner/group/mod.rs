//! `--group-assign`: the input topic's partitions are assigned by Kafka's consumer-group
//! protocol (group id: `--group`, default the pipeline's name), so instances that come
//! and go share them with no coordinator of ours. Each generation runs one task per
//! assigned partition, as `--partitions` does; when a rebalance starts, every task takes
//! a final checkpoint and drops its state, and the member rejoins; a partition
//! assigned restores its latest checkpoint from the shared checkpoint directory.
//!
//! Fencing is twofold: a task writes nothing once its generation is over (the
//! coordinator said so, or no heartbeat was accepted for a whole session, as after a
//! freeze), and nothing once a later owner took the partition's next epoch file.
//!
//! Without `--follow` a partition read to its end is marked done (`end-of-input` in its
//! checkpoint directory, with the offset read to) and is not run again until records
//! are appended past that offset; an instance leaves the group and exits once every
//! partition of the topic is done.

#[cfg(feature = "kafka")]
mod controller;
#[cfg(feature = "kafka")]
mod marker;
pub mod member;
pub mod wire;

#[cfg(feature = "kafka")]
pub(crate) use controller::run;
