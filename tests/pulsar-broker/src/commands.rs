//! Builders for the frames the broker sends, on the crate's own protobuf types. Every
//! `BaseCommand` needs its `type` set to the field it carries; these functions keep that pairing
//! in one place.

use pulsar::message::{
    proto::{
        self, base_command::Type, command_lookup_topic_response,
        command_partitioned_topic_metadata_response, BaseCommand, MessageIdData,
    },
    Message, Payload,
};

use crate::{error::Error, topic::Delivery};

/// The version the broker reports in CONNECTED.
pub const SERVER_VERSION: &str = concat!("pulsar-test-broker-", env!("CARGO_PKG_VERSION"));

/// The largest frame the broker accepts, reported in CONNECTED (Pulsar's default, 5 MiB).
pub const MAX_MESSAGE_SIZE: i32 = 5 * 1024 * 1024;

/// Request id on frames the broker starts itself (CLOSE_PRODUCER, CLOSE_CONSUMER). A client
/// matches a CLOSE_CONSUMER's request id against its own pending requests first, so the broker
/// uses one a client never reaches.
pub const BROKER_REQUEST_ID: u64 = u64::MAX;

fn frame(r#type: Type, command: BaseCommand) -> Message {
    Message {
        command: BaseCommand {
            r#type: r#type as i32,
            ..command
        },
        payload: None,
    }
}

/// CONNECTED, echoing the client's protocol version.
pub fn connected(protocol_version: Option<i32>) -> Message {
    frame(
        Type::Connected,
        BaseCommand {
            connected: Some(proto::CommandConnected {
                server_version: SERVER_VERSION.to_owned(),
                protocol_version,
                max_message_size: Some(MAX_MESSAGE_SIZE),
            }),
            ..Default::default()
        },
    )
}

/// PING.
pub fn ping() -> Message {
    frame(
        Type::Ping,
        BaseCommand {
            ping: Some(proto::CommandPing {}),
            ..Default::default()
        },
    )
}

/// PONG.
pub fn pong() -> Message {
    frame(
        Type::Pong,
        BaseCommand {
            pong: Some(proto::CommandPong {}),
            ..Default::default()
        },
    )
}

/// ERROR answering request `request_id`.
pub fn error(request_id: u64, error: &Error) -> Message {
    frame(
        Type::Error,
        BaseCommand {
            error: Some(proto::CommandError {
                request_id,
                error: error.server_error() as i32,
                message: error.to_string(),
            }),
            ..Default::default()
        },
    )
}

/// SUCCESS answering request `request_id`.
pub fn success(request_id: u64) -> Message {
    frame(
        Type::Success,
        BaseCommand {
            success: Some(proto::CommandSuccess {
                request_id,
                schema: None,
            }),
            ..Default::default()
        },
    )
}

/// LOOKUP_RESPONSE: "connect to `service_url`, it owns the topic" (authoritative, no proxy),
/// or the lookup's failure.
pub fn lookup_response(request_id: u64, result: Result<&str, &Error>) -> Message {
    use command_lookup_topic_response::LookupType;
    let response = match result {
        Ok(service_url) => proto::CommandLookupTopicResponse {
            request_id,
            // the client takes the field of its own scheme: `pulsar+ssl://` reads the TLS one
            broker_service_url: Some(service_url.to_owned()),
            broker_service_url_tls: Some(service_url.to_owned()),
            response: Some(LookupType::Connect as i32),
            authoritative: Some(true),
            proxy_through_service_url: Some(false),
            ..Default::default()
        },
        Err(error) => proto::CommandLookupTopicResponse {
            request_id,
            response: Some(LookupType::Failed as i32),
            error: Some(error.server_error() as i32),
            message: Some(error.to_string()),
            ..Default::default()
        },
    };
    frame(
        Type::LookupResponse,
        BaseCommand {
            lookup_topic_response: Some(response),
            ..Default::default()
        },
    )
}

/// PARTITIONED_METADATA_RESPONSE: every topic here is non-partitioned (0 partitions).
pub fn partitioned_metadata_response(request_id: u64, result: Result<(), &Error>) -> Message {
    use command_partitioned_topic_metadata_response::LookupType;
    let response = match result {
        Ok(()) => proto::CommandPartitionedTopicMetadataResponse {
            request_id,
            partitions: Some(0),
            response: Some(LookupType::Success as i32),
            ..Default::default()
        },
        Err(error) => proto::CommandPartitionedTopicMetadataResponse {
            request_id,
            response: Some(LookupType::Failed as i32),
            error: Some(error.server_error() as i32),
            message: Some(error.to_string()),
            ..Default::default()
        },
    };
    frame(
        Type::PartitionedMetadataResponse,
        BaseCommand {
            partition_metadata_response: Some(response),
            ..Default::default()
        },
    )
}

/// PRODUCER_SUCCESS. No deduplication: `last_sequence_id` is always -1.
pub fn producer_success(request_id: u64, producer_name: &str) -> Message {
    frame(
        Type::ProducerSuccess,
        BaseCommand {
            producer_success: Some(proto::CommandProducerSuccess {
                request_id,
                producer_name: producer_name.to_owned(),
                last_sequence_id: Some(-1),
                producer_ready: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

/// SEND_RECEIPT for a stored entry.
pub fn send_receipt(producer_id: u64, sequence_id: u64, message_id: MessageIdData) -> Message {
    frame(
        Type::SendReceipt,
        BaseCommand {
            send_receipt: Some(proto::CommandSendReceipt {
                producer_id,
                sequence_id,
                message_id: Some(message_id),
                highest_sequence_id: Some(sequence_id),
            }),
            ..Default::default()
        },
    )
}

/// SEND_ERROR for a SEND the broker did not store.
pub fn send_error(producer_id: u64, sequence_id: u64, error: &Error) -> Message {
    frame(
        Type::SendError,
        BaseCommand {
            send_error: Some(proto::CommandSendError {
                producer_id,
                sequence_id,
                error: error.server_error() as i32,
                message: error.to_string(),
            }),
            ..Default::default()
        },
    )
}

/// ACK_RESPONSE, only sent when the ACK carried a request id.
pub fn ack_response(consumer_id: u64, request_id: u64) -> Message {
    frame(
        Type::AckResponse,
        BaseCommand {
            ack_response: Some(proto::CommandAckResponse {
                consumer_id,
                request_id: Some(request_id),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

/// MESSAGE: an entry pushed to a consumer, with its payload.
pub fn message(delivery: Delivery) -> Message {
    let Delivery {
        consumer,
        message_id,
        redelivery_count,
        metadata,
        data,
    } = delivery;
    Message {
        command: BaseCommand {
            r#type: Type::Message as i32,
            message: Some(proto::CommandMessage {
                consumer_id: consumer.consumer_id,
                message_id,
                redelivery_count: Some(redelivery_count),
                ..Default::default()
            }),
            ..Default::default()
        },
        payload: Some(Payload { metadata, data }),
    }
}

/// CLOSE_PRODUCER from the broker: the client re-creates the producer (after a lookup).
pub fn close_producer(producer_id: u64) -> Message {
    frame(
        Type::CloseProducer,
        BaseCommand {
            close_producer: Some(proto::CommandCloseProducer {
                producer_id,
                request_id: BROKER_REQUEST_ID,
            }),
            ..Default::default()
        },
    )
}

/// CLOSE_CONSUMER from the broker: the client re-subscribes (after a lookup).
pub fn close_consumer(consumer_id: u64) -> Message {
    frame(
        Type::CloseConsumer,
        BaseCommand {
            close_consumer: Some(proto::CommandCloseConsumer {
                consumer_id,
                request_id: BROKER_REQUEST_ID,
            }),
            ..Default::default()
        },
    )
}
