//! The load's use of the wire protocol (DESIGN.md §3): the frames it sends, numbered so that
//! replies and deliveries are matched to them, and the payload format that carries the send
//! timestamp from sender to recipient. Reading frames is `chat_client::peek`'s.
//!
//! Everything here is pure: the connection loops feed it text and send what it returns.

use chat_protocol::{ClientFrame, GroupId, IdError, MessageId, Request, RequestId, UserId};

/// SEND (type 1) of message number `n` to `to`: `clientMsgId` is `c<n>`, `requestId` `r<n>`.
pub fn send_frame(to: &UserId, n: u64, message: String) -> String {
    let request = Request::Send {
        to: to.clone(),
        message,
        file_type: 0,
        file: None,
        client_msg_id: Some(format!("c{n}")),
    };
    ClientFrame::new(request, Some(RequestId::Text(format!("r{n}")))).to_json()
}

/// SEND to a group (type 9) of message number `n`, numbered as [`send_frame`].
pub fn group_send_frame(group: &GroupId, n: u64, message: String) -> String {
    let request = Request::SendGroup {
        group_id: group.clone(),
        message,
        file_type: 0,
        file: None,
        client_msg_id: Some(format!("c{n}")),
    };
    ClientFrame::new(request, Some(RequestId::Text(format!("r{n}")))).to_json()
}

/// ACK (type 15) of a delivered envelope, by its `messageId`.
pub fn ack_frame(message_id: &str) -> Result<String, IdError> {
    let msgid = MessageId::parse(message_id)?;
    Ok(ClientFrame::new(Request::Ack { msgid }, None).to_json())
}

/// The message number in a `requestId` of [`send_frame`] (`r<n>`).
pub fn request_number(request_id: &str) -> Option<u64> {
    request_id.strip_prefix('r')?.parse().ok()
}

/// The message number in a `clientMsgId` of [`send_frame`] (`c<n>`).
pub fn client_msg_number(client_msg_id: &str) -> Option<u64> {
    client_msg_id.strip_prefix('c')?.parse().ok()
}

/// Message text carrying the send time (µs since the run's start), padded with `x` to `size`
/// bytes so the payload size is a knob.
pub fn payload(sent_us: u64, size: usize) -> String {
    let mut text = format!("t{sent_us} ");
    if text.len() < size {
        text.extend(std::iter::repeat_n('x', size - text.len()));
    }
    text
}

/// The send time embedded by [`payload`].
pub fn payload_sent_us(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('t')?;
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_frame_round_trips_numbers() {
        let bob = UserId::parse("bob").unwrap();
        let frame: serde_json::Value =
            serde_json::from_str(&send_frame(&bob, 12, "t1 ".into())).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"type":1,"params":{"toMessageId":"bob","message":"t1 ",
                "fileType":0,"clientMsgId":"c12"},"requestId":"r12"})
        );
        assert_eq!(request_number("r12"), Some(12));
        assert_eq!(client_msg_number("c12"), Some(12));
        assert_eq!(request_number("a12"), None);
    }

    #[test]
    fn payload_carries_send_time_and_size() {
        let text = payload(1_234_567, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(payload_sent_us(&text), Some(1_234_567));
        let short = payload(99, 1);
        assert_eq!(payload_sent_us(&short), Some(99));
        assert_eq!(payload_sent_us("hello"), None);
    }
}
