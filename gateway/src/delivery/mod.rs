//! Delivery bookkeeping, pure and synchronous: the per-connection ack window ([`Outbox`]) and
//! fan-out planning ([`plan_fanout`]).

mod fanout;
mod outbox;

pub use fanout::{plan_fanout, DeviceRoute, FanoutPlan};
pub use outbox::{Expired, Outbox, PullRequest, Push, Windowed};
