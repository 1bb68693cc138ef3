//! Fuzzing entry points, behind the `fuzzing` feature (and built for this crate's tests): what
//! the `cargo fuzz` target `server_frame` in `fuzz/` calls, replayed over the kept inputs by the
//! test below on stable. Not part of the client's API.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chat_protocol::{ClientFrame, Request, ServerFrame};

use crate::peek::peek;
use crate::session::{Effect, Event, Session};

/// Target `server_frame`: the input's lines are server text frames, read by the typed parser,
/// by [`peek`], and one after another by one client [`Session`] (time moving 300 ms a frame, so
/// gap SYNCs fall due).
///
/// Checks, besides "no panic": a frame the typed parser reads is written back by `to_json` to
/// one that parses the same; every frame the session writes is a valid client frame; no
/// `messageId` is handed to the application twice.
pub fn server_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut session = Session::new();
    session.connected();
    let mut now = Instant::now();
    let mut seen = HashSet::new();
    for line in text.split('\n') {
        let _ = peek(line);
        if let Ok(frame) = ServerFrame::parse(line) {
            let json = frame.to_json();
            let again = ServerFrame::parse(&json)
                .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
            assert_eq!(again, frame, "{json} parses back differently");
        }
        let _ = session.on_text(line, now);
        now += Duration::from_millis(300);
        if session.next_timeout().is_some_and(|at| at <= now) {
            session.on_timeout(now);
        }
        while let Some(effect) = session.poll() {
            match effect {
                Effect::Write(frame) => {
                    let parsed = ClientFrame::parse(&frame)
                        .unwrap_or_else(|e| panic!("the client wrote {frame}: {}", e.message));
                    if let Request::Sync { limit, .. } = parsed.request {
                        assert!(limit > 0, "{frame}");
                    }
                }
                Effect::Event(Event::Message(envelope)) => {
                    assert!(
                        seen.insert(envelope.message_id.clone()),
                        "{} handed over twice",
                        envelope.message_id
                    );
                }
                Effect::Event(_) | Effect::Reconnect { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every kept input of the `server_frame` target passes its checks.
    #[test]
    fn server_frame_inputs_replay() {
        let n = chat_protocol::fuzz::replay("server_frame", super::server_frame);
        assert!(n >= 10, "only {n} inputs in fuzz/corpus/server_frame");
    }
}
