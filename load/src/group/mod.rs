//! The group scenario: M members online, each on its own connection; the first S of them send to
//! the group (paced at a total `--rate` or keeping `--window` sends outstanding each), and every
//! member acks every DELIVER GROUP (10) as the protocol requires. The group is made with CREATE
//! GROUP and ADD MEMBERS before the run. Measured as `direct` is — but each stored message makes
//! M - 1 deliveries — deliveries/s, send → deliver percentiles, lost deliveries and server CPU
//! per 1,000 deliveries.

mod report;
mod setup;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use chat_protocol::UserId;

use crate::cli::GroupArgs;
use crate::client::{all_up, connect_all, connectors};
use crate::direct::recipient::{self, Recipient};
use crate::direct::sender::{self, Mode, Sender, Target};
use crate::direct::{announce, run_out, window_marks, Run, Window, MESSAGE_UNITS};
use crate::identity::{User, Users};
use crate::live::{Live, Units};
use crate::pacing::Schedule;
use crate::procfs;
use crate::scenario::{Gate, Scenario, Share, Watched};
pub use report::{GroupReport, GroupTally};

/// `group`.
pub struct Group {
    pub args: GroupArgs,
}

impl Scenario for Group {
    type Tally = GroupTally;
    type Report = GroupReport;

    fn units(&self) -> Units {
        MESSAGE_UNITS
    }

    fn marks(&self) -> Vec<(&'static str, Duration)> {
        window_marks(&self.args.run)
    }

    async fn run(&self, share: Share, gate: &Gate, live: Arc<Live>) -> anyhow::Result<GroupTally> {
        let args = &self.args;
        let (m, s) = (args.members, args.senders);
        procfs::check_fd_budget(m as u64, procfs::open_files_limit(), "--members")
            .map_err(|e| anyhow!(e))?;
        let connect = &args.connect;
        let endpoints = connectors(connect).await?;
        let prefix = share.prefix(connect.user_prefix.as_deref().unwrap_or("load"));
        let users = Users::new(Some(prefix), &connect.jwt_secret, connect.token_ttl_seconds);
        let members: Vec<User> = (0..m).map(|i| users.user("m", i)).collect();
        eprintln!("connecting {m} members as {}-m*", users.prefix());
        let mut conns = all_up(connect_all(&endpoints, 0, &members, 0, connect.concurrency).await)?;
        let others: Vec<UserId> = members[1..]
            .iter()
            .map(|u| UserId::parse(u.id.as_str()))
            .collect::<Result<_, _>>()?;
        let group = setup::create_group(&mut conns[0], users.prefix(), &others)
            .await
            .context("creating the group")?;
        eprintln!("group {group} of {m} members; {s} sender(s)");

        let start = gate.ready().await?;
        let (warmup, duration) = (args.run.warmup(), args.run.duration());
        let mut run = Run::new(start, Window::new(warmup, duration), live);
        run.fanout = m as u64 - 1;
        let run = Arc::new(run);
        let sender_ids: Vec<String> = members[..s].iter().map(|u| u.id.clone()).collect();
        let heartbeat = connect.heartbeat();
        let rate = args.run.rate;
        let (mut sender_tasks, mut member_tasks) = (Vec::new(), Vec::new());
        for (i, conn) in conns.into_iter().enumerate() {
            let member = Recipient::new(&sender_ids, None, run.clone());
            if i < s {
                let mode = match rate {
                    Some(rate) => Mode::Paced(Schedule::for_sender(rate, s, i)),
                    None => Mode::Window(args.run.window),
                };
                let to = Target::Group(group.clone());
                let state = Sender::to(to, Some(member), args.run.message_bytes, run.clone());
                sender_tasks.push(tokio::spawn(sender::drive(conn, state, mode, i, heartbeat)));
            } else {
                member_tasks.push(tokio::spawn(recipient::drive(conn, member, i, heartbeat)));
            }
        }
        announce(rate, &args.run);
        let limit = Duration::from_secs(args.run.drain_seconds);
        let (drained, senders, others) = run_out(&run, limit, sender_tasks, member_tasks).await?;
        Ok(GroupTally::build(&run, drained, senders, others))
    }

    fn merge(into: &mut GroupTally, other: GroupTally) {
        into.merge(other);
    }

    fn report(&self, tally: GroupTally, watched: Watched) -> GroupReport {
        GroupReport::build(&self.args, tally, watched)
    }
}
