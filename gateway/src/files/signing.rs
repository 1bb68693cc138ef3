//! [`SigningStore`]: the [`Store`] as the gateway's handlers see it, with a fresh signed URL in
//! the `file` of every message it hands out. It wraps the outermost store (the recent cache
//! included), so what is stored or cached never holds a URL that would expire there, and every
//! path that makes an envelope from the store — push after SEND, SYNC, catch-up — signs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Files;
use crate::error::Result;
use crate::model::StoredMessage;
use crate::store::{
    Acked, Backlog, ConversationSummary, Erased, Group, GroupChange, NewMessage, Page, Position,
    ReadMark, Recalled, Sent, Store,
};

/// A [`Store`] whose messages carry signed file URLs.
pub struct SigningStore {
    inner: Arc<dyn Store>,
    files: Arc<Files>,
}

impl SigningStore {
    /// `inner`, signing with `files`.
    pub fn new(inner: Arc<dyn Store>, files: Arc<Files>) -> Self {
        Self { inner, files }
    }

    /// Only messages with a file cost anything here. A recalled message's file is served to
    /// nobody but its uploader: its tombstone carries none.
    async fn sign(&self, message: &mut StoredMessage) -> Result<()> {
        if message.recalled {
            message.file = None;
        }
        match &mut message.file {
            Some(file) => self.files.sign(file).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Store for SigningStore {
    async fn upsert_user(&self, id: &str, name: &str) -> Result<()> {
        self.inner.upsert_user(id, name).await
    }

    async fn send_direct(&self, msg: NewMessage) -> Result<Sent> {
        let mut sent = self.inner.send_direct(msg).await?;
        self.sign(&mut sent.message).await?;
        Ok(sent)
    }

    async fn send_group(&self, msg: NewMessage) -> Result<Sent> {
        let mut sent = self.inner.send_group(msg).await?;
        self.sign(&mut sent.message).await?;
        Ok(sent)
    }

    async fn ack(&self, user: &str, message_id: &str) -> Result<Acked> {
        self.inner.ack(user, message_id).await
    }

    async fn create_group(&self, owner: &str, name: &str, members: &[String]) -> Result<Group> {
        self.inner.create_group(owner, name, members).await
    }

    async fn change_group(&self, user: &str, group_id: &str, change: GroupChange) -> Result<Group> {
        self.inner.change_group(user, group_id, change).await
    }

    async fn recall(&self, user: &str, message_id: &str, window: Duration) -> Result<Recalled> {
        self.inner.recall(user, message_id, window).await
    }

    async fn purge(&self, before_ms: i64, limit: u32) -> Result<u64> {
        self.inner.purge(before_ms, limit).await
    }

    async fn erase_user(&self, user: &str) -> Result<Erased> {
        self.inner.erase_user(user).await
    }

    async fn mark_read(&self, user: &str, conversation_id: &str, seq: i64) -> Result<ReadMark> {
        self.inner.mark_read(user, conversation_id, seq).await
    }

    async fn read(
        &self,
        user: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        let mut page = self
            .inner
            .read(user, conversation_id, after_seq, limit)
            .await?;
        for m in &mut page.messages {
            self.sign(m).await?;
        }
        Ok(page)
    }

    async fn history(&self, conversation_id: &str, after_seq: i64, limit: u32) -> Result<Page> {
        let mut page = self
            .inner
            .history(conversation_id, after_seq, limit)
            .await?;
        for m in &mut page.messages {
            self.sign(m).await?;
        }
        Ok(page)
    }

    async fn position(&self, user: &str, conversation_id: &str) -> Result<Position> {
        self.inner.position(user, conversation_id).await
    }

    async fn participants(&self, user: &str, conversation_id: &str) -> Result<Vec<String>> {
        self.inner.participants(user, conversation_id).await
    }

    async fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        self.inner.conversations(user).await
    }

    async fn block(&self, user: &str, other: &str, on: bool) -> Result<()> {
        self.inner.block(user, other, on).await
    }

    async fn blocked(&self, user: &str) -> Result<Vec<String>> {
        self.inner.blocked(user).await
    }

    async fn visible(&self, viewer: &str, users: &[String]) -> Result<Vec<String>> {
        self.inner.visible(viewer, users).await
    }

    async fn backlog(&self, user: &str) -> Result<Vec<Backlog>> {
        self.inner.backlog(user).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}
