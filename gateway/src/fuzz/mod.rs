//! Fuzzing entry points, behind the `fuzzing` feature (and built for this crate's tests): what
//! the `cargo fuzz` target `session` in `fuzz/` calls, replayed over the kept inputs by the test
//! below on stable. Not part of the gateway's API.
//!
//! The target drives one connection core ([`crate::session::core::Connection`]) through a
//! script decoded from the fuzzer's bytes — client frames (raw and well-formed), time passing,
//! live messages and redeliveries, notices, kicks, drains, store calls and page reads finishing
//! well or badly, resyncs — and checks, besides "no panic": every frame written parses as a
//! server frame; a reply answered at once has the right type and echoes the frame's
//! `requestId`, and a store call carries it; an error answering a call echoes the call's id; at
//! most one page read and [`crate::session::core::MAX_OPS`] client calls are out at a time;
//! the ack window is never overrun, a push is retried only while in flight and never follows
//! its ack; one input causes a bounded number of effects; nothing comes after the close; and
//! the timer never asks to fire again at the instant it fired.

mod input;
mod session;

/// Target `session`: plays the script in `data` against one connection core.
pub fn session(data: &[u8]) {
    session::run(data);
}

#[cfg(test)]
mod tests {
    /// Every kept input of the `session` target passes its checks.
    #[test]
    fn session_inputs_replay() {
        let n = chat_protocol::fuzz::replay("session", super::session);
        assert!(n >= 10, "only {n} inputs in fuzz/corpus/session");
    }

    proptest::proptest! {
        /// Random scripts on stable, beyond the kept corpus: every byte string is a script, so
        /// this explores without coverage guidance what `cargo fuzz run session` explores with it
        /// (256 cases; `PROPTEST_CASES` for more).
        #[test]
        fn random_session_scripts_keep_the_rules(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1500),
        ) {
            super::session(&data);
        }
    }
}
