//! Frame-level checks with a hand-driven socket on the crate's own `Codec`: the answers the
//! client depends on (lookup, partitioned metadata) and the broker's side of keepalive.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pulsar::message::{
    proto::{self, base_command::Type, command_lookup_topic_response, BaseCommand, CommandConnect},
    Codec, Message,
};
use pulsar_test_broker::{Broker, BrokerConfig, BrokerHandle};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

type Frames = Framed<TcpStream, Codec>;

const SOON: Duration = Duration::from_secs(5);

fn frame(command: BaseCommand) -> Message {
    Message {
        command,
        payload: None,
    }
}

fn connect() -> Message {
    frame(BaseCommand {
        r#type: Type::Connect as i32,
        connect: Some(CommandConnect {
            client_version: "raw-test".into(),
            protocol_version: Some(12),
            ..Default::default()
        }),
        ..Default::default()
    })
}

async fn receive(frames: &mut Frames) -> Option<Message> {
    tokio::time::timeout(SOON, frames.next())
        .await
        .expect("a frame or the end in time")
        .map(|frame| frame.expect("decodable frame"))
}

async fn connected(broker: &BrokerHandle) -> Frames {
    let socket = TcpStream::connect(broker.service_addr()).await.unwrap();
    let mut frames = Framed::new(socket, Codec);
    frames.send(connect()).await.unwrap();
    let answer = receive(&mut frames).await.expect("CONNECTED");
    let connected = answer.command.connected.expect("CONNECTED");
    assert!(connected.server_version.starts_with("pulsar-test-broker"));
    assert_eq!(connected.protocol_version, Some(12));
    frames
}

#[tokio::test]
async fn lookup_points_at_this_broker_authoritatively_and_topics_have_no_partitions() {
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let mut frames = connected(&broker).await;

    frames
        .send(frame(BaseCommand {
            r#type: Type::PartitionedMetadata as i32,
            partition_metadata: Some(proto::CommandPartitionedTopicMetadata {
                topic: "persistent://public/default/t".into(),
                request_id: 1,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    let metadata = receive(&mut frames).await.unwrap();
    let metadata = metadata.command.partition_metadata_response.unwrap();
    assert_eq!((metadata.request_id, metadata.partitions), (1, Some(0)));

    frames
        .send(frame(BaseCommand {
            r#type: Type::Lookup as i32,
            lookup_topic: Some(proto::CommandLookupTopic {
                topic: "persistent://public/default/t".into(),
                request_id: 2,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    let lookup = receive(&mut frames).await.unwrap();
    let lookup = lookup.command.lookup_topic_response.unwrap();
    assert_eq!(lookup.request_id, 2);
    assert_eq!(
        lookup.response,
        Some(command_lookup_topic_response::LookupType::Connect as i32)
    );
    assert_eq!(
        lookup.broker_service_url.as_deref(),
        Some(broker.service_url())
    );
    assert_eq!(lookup.authoritative, Some(true));

    frames
        .send(frame(BaseCommand {
            r#type: Type::Lookup as i32,
            lookup_topic: Some(proto::CommandLookupTopic {
                topic: "persistent://only-two/parts".into(),
                request_id: 3,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    let failed = receive(&mut frames).await.unwrap();
    let failed = failed.command.lookup_topic_response.unwrap();
    assert_eq!(
        failed.error,
        Some(proto::ServerError::InvalidTopicName as i32)
    );
}

#[tokio::test]
async fn broker_answers_pings_and_drops_a_client_that_ignores_its_pings() {
    let config = BrokerConfig {
        keepalive_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let broker = Broker::start_with(config, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    let mut frames = connected(&broker).await;

    frames
        .send(frame(BaseCommand {
            r#type: Type::Ping as i32,
            ping: Some(proto::CommandPing {}),
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut pinged = false;
    let mut ponged = false;
    // read everything, answering nothing: a PONG comes back, then PINGs, then the end
    while let Some(message) = receive(&mut frames).await {
        ponged |= message.command.pong.is_some();
        pinged |= message.command.ping.is_some();
    }
    assert!(ponged, "the broker answers PING");
    assert!(pinged, "the broker sends PING");
    assert_eq!(broker.connection_count(), 0);
}

#[tokio::test]
async fn a_connection_must_start_with_connect() {
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let socket = TcpStream::connect(broker.service_addr()).await.unwrap();
    let mut frames = Framed::new(socket, Codec);
    frames
        .send(frame(BaseCommand {
            r#type: Type::Ping as i32,
            ping: Some(proto::CommandPing {}),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(
        receive(&mut frames).await.is_none(),
        "closed without an answer"
    );
}
