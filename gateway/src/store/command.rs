//! The writer's commands: each write a caller queues, with a reply channel typed for its answer.
//!
//! A command carries its own `oneshot::Sender<Result<T>>` of the type its caller waits for
//! ([`Reply`]), so no other kind of reply can reach it. SEND and ACK ([`MessageCommand`]) are
//! stored in runs, set-based; the rare commands ([`ManageCommand`]) run one by one between runs.
//! Keeping them apart in the type lets each part of the writer take only the commands it runs.
//! Results wait for the commit: a run's beside it (`segment::Results`, so that a queued SEND
//! stays as small as its request), a rare command's in its own [`Pending`].

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Acked, Erased, Group, GroupChange, NewMessage, ReadMark, Recalled, Sent};
use crate::error::{Error, Result};

/// A write, as a store caller asked for it.
#[derive(Debug)]
pub(super) enum Command {
    Message(MessageCommand),
    /// Boxed: a rare command holds its result until commit, and every queued SEND would
    /// otherwise take as much room in the queue.
    Manage(Box<ManageCommand>),
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

/// Display names, group management, READ and BLOCK: rare, run one by one ([`super::groups`]).
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
    ChangeGroup {
        user: String,
        group_id: String,
        change: GroupChange,
        reply: Pending<Group>,
    },
    MarkRead {
        user: String,
        conversation_id: String,
        seq: i64,
        reply: Pending<ReadMark>,
    },
    Recall {
        user: String,
        message_id: String,
        window_ms: i64,
        reply: Pending<Recalled>,
    },
    Purge {
        before_id: String,
        limit: i64,
        reply: Pending<u64>,
    },
    EraseUser {
        user: String,
        reply: Pending<Erased>,
    },
    Block {
        blocker: String,
        blocked: String,
        on: bool,
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

    /// The batch failed with `cause`: the caller may try again.
    pub(super) fn fail(self, cause: &Arc<Error>) {
        self.send(Err(Error::StoreWrite(Arc::clone(cause))));
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
    pub(super) fn fail(self, cause: &Arc<Error>) {
        match self {
            MessageCommand::Send { reply, .. } => reply.fail(cause),
            MessageCommand::Ack { reply, .. } => reply.fail(cause),
        }
    }
}

impl ManageCommand {
    pub(super) fn answer(self) {
        match self {
            ManageCommand::UpsertUser { reply, .. } | ManageCommand::Block { reply, .. } => {
                reply.send()
            }
            ManageCommand::CreateGroup { reply, .. } | ManageCommand::ChangeGroup { reply, .. } => {
                reply.send()
            }
            ManageCommand::MarkRead { reply, .. } => reply.send(),
            ManageCommand::Recall { reply, .. } => reply.send(),
            ManageCommand::Purge { reply, .. } => reply.send(),
            ManageCommand::EraseUser { reply, .. } => reply.send(),
        }
    }

    pub(super) fn fail(self, cause: &Arc<Error>) {
        match self {
            ManageCommand::UpsertUser { reply, .. } | ManageCommand::Block { reply, .. } => {
                reply.reply.fail(cause)
            }
            ManageCommand::CreateGroup { reply, .. } | ManageCommand::ChangeGroup { reply, .. } => {
                reply.reply.fail(cause)
            }
            ManageCommand::MarkRead { reply, .. } => reply.reply.fail(cause),
            ManageCommand::Recall { reply, .. } => reply.reply.fail(cause),
            ManageCommand::Purge { reply, .. } => reply.reply.fail(cause),
            ManageCommand::EraseUser { reply, .. } => reply.reply.fail(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_batch_answers_503_with_its_cause_as_the_source() {
        let (tx, mut rx) = oneshot::channel::<Result<Sent>>();
        let cause = Arc::new(Error::Internal("deadlock".into()));
        Reply::new(tx).fail(&cause);
        let err = rx.try_recv().unwrap().unwrap_err();
        assert_eq!((err.status(), err.code()), (503, "unavailable"));
        assert_eq!(err.client_message(), "store write failed; try again");
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "deadlock");
    }

    #[test]
    fn a_client_error_is_held_for_its_caller_an_internal_one_fails_the_batch() {
        let (tx, mut rx) = oneshot::channel::<Result<()>>();
        let mut pending = Pending::new(tx);
        let internal = pending.hold(Err(Error::Internal("broken".into())));
        assert!(internal.is_err_and(|e| e.is_internal()));
        pending
            .hold(Err(Error::Forbidden("not a member".into())))
            .unwrap();
        pending.send();
        assert_eq!(rx.try_recv().unwrap().unwrap_err().status(), 403);
    }

    #[test]
    fn a_command_without_a_result_closes_its_channel() {
        let (tx, mut rx) = oneshot::channel::<Result<Group>>();
        Pending::new(tx).send();
        assert!(rx.try_recv().is_err());
    }
}
