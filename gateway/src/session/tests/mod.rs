//! The connection core driven frame by frame and deadline by deadline with made-up instants
//! ([`core`]), and the async shell over channels with tokio's paused clock ([`shell`]).

mod core;
mod deadlines;
mod harness;
mod shell;

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::{DeviceId, UserId};
use serde_json::Value;

use super::core::{Effect, Settings};
use super::Identity;
use crate::hub::Outbound;
use crate::model::{Prepared, StoredMessage, Target};

const HEARTBEAT: Duration = Duration::from_secs(30);
const TIMELIFE: Duration = Duration::from_secs(1800);
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
const WALL: i64 = 1_795_397_103_801;

fn settings() -> Arc<Settings> {
    Arc::new(Settings {
        pod: "gw-0".into(),
        heartbeat: HEARTBEAT,
        timelife: TIMELIFE,
        ack_timeout: ACK_TIMEOUT,
        ack_window: 4,
        rate_limit: 100,
        rate_burst: 200,
        write_timeout: Duration::from_secs(10),
    })
}

fn bob() -> Arc<Identity> {
    Arc::new(Identity {
        user: UserId::parse("bob").unwrap(),
        name: "Bob".into(),
        device: DeviceId::parse("phone").unwrap(),
        epoch: 7,
        session_id: "gw-0_bob_7".into(),
        token_expires_ms: i64::MAX,
    })
}

/// A 1:1 message alice → bob with seq `seq`, as the store would hand it out.
fn stored(seq: i64) -> StoredMessage {
    StoredMessage {
        message_id: format!("{seq:032x}"),
        conversation_id: "dm:alice:bob".into(),
        seq,
        from: "alice".into(),
        from_name: "Alice".into(),
        target: Target::Direct {
            to: "bob".into(),
            to_name: "Bob".into(),
        },
        body: format!("hello {seq}"),
        file_type: 0,
        file: None,
        client_msg_id: None,
        created_at: WALL,
        request_id: format!("r-{seq}"),
        recalled: false,
        system: None,
    }
}

fn live(seq: i64) -> Outbound {
    Outbound::Message(Arc::new(Prepared::new(Arc::new(stored(seq)))))
}

/// The JSON of every frame written among `effects`.
fn written(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Write(text) => Some(serde_json::from_str(text).expect("frames are JSON")),
            _ => None,
        })
        .collect()
}
