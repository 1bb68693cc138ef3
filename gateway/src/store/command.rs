//! The writer's commands: each write a caller queues, with a reply channel typed for its answer.
//!
//! A command carries its own `oneshot::Sender<Result<T>>` of the type its caller waits for
//! ([`Reply`]), so no other kind of reply can reach it. SEND and ACK ([`MessageCommand`]) are
//! stored in runs, set-based; the rare commands ([`ManageCommand`]) run one by one between runs.
//! Keeping them apart in the type lets each part of the writer take only the commands it runs.

use tokio::sync::oneshot;

use super::{Acked, Group, NewMessage, Sent};
use crate::error::{Error, Result};

/// A write, as a store caller asked for it.
#[derive(Debug)]
pub(super) enum Command {
    Message(MessageCommand),
    Manage(ManageCommand),
}

/// SEND and ACK: the message traffic, stored in runs ([`super::segment`]).
#[derive(Debug)]
pub(super) enum MessageCommand {
    Send {
        msg: NewMessage,
        group: bool,
        reply: Reply<Sent>,
    },
    Ack {
        user: String,
        message_id: String,
        reply: Reply<Acked>,
    },
}

/// Display names and group management: rare, run one by one ([`super::groups`]).
#[derive(Debug)]
pub(super) enum ManageCommand {
    UpsertUser {
        id: String,
        name: String,
        reply: Pending<()>,
    },
    CreateGroup {
        owner: String,
        name: String,
        members: Vec<String>,
        reply: Pending<Group>,
    },
    AddMembers {
        user: String,
        group_id: String,
        members: Vec<String>,
        reply: Pending<Group>,
    },
    LeaveGroup {
        user: String,
        group_id: String,
        reply: Pending<()>,
    },
}

/// A caller's reply channel, typed for its answer. Replies go out only after the transaction
/// that holds the command committed: a caller hears nothing before its change is durable.
#[derive(Debug)]
pub(super) struct Reply<T>(oneshot::Sender<Result<T>>);

impl<T> Reply<T> {
    pub(super) fn new(tx: oneshot::Sender<Result<T>>) -> Self {
        Self(tx)
    }

    pub(super) fn send(self, result: Result<T>) {
        let _ = self.0.send(result);
    }

    /// The batch failed: the caller may try again.
    pub(super) fn fail(self) {
        self.send(Err(Error::Unavailable(
            "store write failed; try again".into(),
        )));
    }
}

/// A rare command's reply, with the result held for it until commit. A batch that rolls back
/// and runs again replaces what its first run held.
#[derive(Debug)]
pub(super) struct Pending<T> {
    reply: Reply<T>,
    held: Option<Result<T>>,
}

impl<T> Pending<T> {
    pub(super) fn new(tx: oneshot::Sender<Result<T>>) -> Self {
        Self {
            reply: Reply::new(tx),
            held: None,
        }
    }

    /// Holds a result the caller alone gets (a client error: 403, 404, …), or returns an internal
    /// error, which fails the whole transaction.
    pub(super) fn hold(&mut self, result: Result<T>) -> Result<()> {
        match result {
            Err(e) if e.is_internal() => Err(e),
            result => {
                self.held = Some(result);
                Ok(())
            }
        }
    }

    /// After commit: sends the held result. A command the transaction did not run holds none;
    /// its channel just closes, and the caller sees the store unavailable, as when the writer
    /// stops.
    fn send(self) {
        if let Some(result) = self.held {
            self.reply.send(result);
        }
    }
}

impl MessageCommand {
    pub(super) fn fail(self) {
        match self {
            MessageCommand::Send { reply, .. } => reply.fail(),
            MessageCommand::Ack { reply, .. } => reply.fail(),
        }
    }
}

impl ManageCommand {
    pub(super) fn answer(self) {
        match self {
            ManageCommand::UpsertUser { reply, .. } | ManageCommand::LeaveGroup { reply, .. } => {
                reply.send()
            }
            ManageCommand::CreateGroup { reply, .. } | ManageCommand::AddMembers { reply, .. } => {
                reply.send()
            }
        }
    }

    pub(super) fn fail(self) {
        match self {
            ManageCommand::UpsertUser { reply, .. } | ManageCommand::LeaveGroup { reply, .. } => {
                reply.reply.fail()
            }
            ManageCommand::CreateGroup { reply, .. } | ManageCommand::AddMembers { reply, .. } => {
                reply.reply.fail()
            }
        }
    }
}
