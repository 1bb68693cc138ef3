//! In-process bus: a channel per pod. Share one instance between in-process gateways to make a
//! cluster in one process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Bus, BusEvent, Unsent};
use crate::error::Result;

/// Events buffered per pod inbox before publishers wait.
const INBOX_CAPACITY: usize = 65_536;

/// The embedded bus: each pod's inbox is a channel in this process. Pods that share one instance
/// form a cluster in one process (tests).
#[derive(Default)]
pub struct MemoryBus {
    inboxes: Mutex<HashMap<String, mpsc::Sender<BusEvent>>>,
}

impl MemoryBus {
    /// A bus with no inboxes yet; each pod's appears when it subscribes.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, pod: &str, event: BusEvent) -> std::result::Result<(), Unsent> {
        let inbox = self.inboxes.lock().expect("bus lock").get(pod).cloned();
        match inbox {
            Some(tx) => {
                if tx.send(event).await.is_err() {
                    tracing::debug!(pod, "inbox closed; event dropped (messages stay stored)");
                }
            }
            None => tracing::debug!(
                pod,
                "no such pod inbox; event dropped (messages stay stored)"
            ),
        }
        Ok(())
    }

    async fn subscribe(&self, pod: &str) -> Result<mpsc::Receiver<BusEvent>> {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        self.inboxes
            .lock()
            .expect("bus lock")
            .insert(pod.to_owned(), tx);
        Ok(rx)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
