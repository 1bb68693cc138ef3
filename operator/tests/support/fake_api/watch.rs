//! Watch streams: every change the store makes is kept in a full history and broadcast, and a
//! watch sends the changes after its `resourceVersion` (or the current objects as ADDED) and then
//! every new one, as JSON lines of ADDED/MODIFIED/DELETED. Nothing is ever compacted, so no watch
//! gets 410 Gone. A watch asking for `sendInitialEvents` (a streaming list: kubectl 1.35's
//! `wait`) gets the current objects as ADDED, then the BOOKMARK that marks their end. A watch
//! asking for Tables (`kubectl get -w`) gets each object as a one-row [`table`](super::table).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::kinds::{Key, Kind};
use super::table;
use super::wire::{Body, Selector};
use super::{Inner, State};

/// How a watch sends its events.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Style {
    /// After the initial ADDED events, the initial-events-end BOOKMARK (a streaming list).
    pub(super) initial_events_end: bool,
    /// Each object as a one-row Table.
    pub(super) as_table: bool,
}

/// One change, as watches send it.
#[derive(Debug)]
pub(super) struct Change {
    pub(super) resource_version: u64,
    pub(super) type_: &'static str,
    pub(super) key: Key,
    pub(super) object: Value,
}

impl Inner {
    /// Keeps `change` for later watches and sends it to the open ones.
    pub(super) fn publish(&self, state: &mut State, change: Change) {
        let change = Arc::new(change);
        state.history.push(change.clone());
        let _ = self.changes.send(change);
    }

    /// The changes after `since` (or the current objects as ADDED when `None`, followed by the
    /// initial-events-end BOOKMARK if `style` asks), then every new change, as JSON lines, until
    /// `timeout`.
    pub(super) fn watch(
        &self,
        kind: Kind,
        namespace: Option<String>,
        selector: Selector,
        since: Option<u64>,
        style: Style,
        timeout: Duration,
    ) -> Body {
        let matches = move |change: &Change| {
            change.key.is(kind)
                && namespace
                    .as_ref()
                    .is_none_or(|ns| change.key.namespace == *ns)
                && selector.matches(&change.object)
        };
        // Snapshot and subscribe under the lock, so no change falls between the two.
        let (backlog, receiver, bookmark) = {
            let state = self.lock();
            let bookmark = json!({"type": "BOOKMARK", "object": {
                "apiVersion": kind.api_version,
                "kind": kind.kind,
                "metadata": {
                    "resourceVersion": state.resource_version.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }});
            let receiver = self.changes.subscribe();
            let backlog: Vec<Arc<Change>> = match since {
                Some(rv) => state
                    .history
                    .iter()
                    .filter(|c| c.resource_version > rv)
                    .cloned()
                    .collect(),
                None => state
                    .objects
                    .iter()
                    .map(|(key, object)| {
                        Arc::new(Change {
                            resource_version: state.resource_version,
                            type_: "ADDED",
                            key: key.clone(),
                            object: object.clone(),
                        })
                    })
                    .collect(),
            };
            (backlog, receiver, bookmark)
        };
        let live = stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(change) => return Some((change, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let line = |value: &Value| {
            let mut line = serde_json::to_vec(value).expect("JSON values serialize");
            line.push(b'\n');
            Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
        };
        let changes = move |stream: stream::BoxStream<'static, Arc<Change>>| {
            let matches = matches.clone();
            stream
                .filter(move |change| std::future::ready(matches(change)))
                .map(move |change| {
                    let object = if style.as_table {
                        table::render(kind, &change.object, &HashMap::new())
                    } else {
                        change.object.clone()
                    };
                    line(&json!({"type": change.type_, "object": object}))
                })
        };
        let end = (style.initial_events_end && since.is_none()).then(|| line(&bookmark));
        let lines = changes(stream::iter(backlog).boxed())
            .chain(stream::iter(end))
            .chain(changes(live.boxed()))
            .take_until(tokio::time::sleep(timeout));
        StreamBody::new(lines).boxed_unsync()
    }
}
