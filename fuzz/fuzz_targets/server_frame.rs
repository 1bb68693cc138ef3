//! `cargo +nightly fuzz run server_frame`: the checks are `chat_client::fuzz::server_frame`'s (see there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_client::fuzz::server_frame(data));
