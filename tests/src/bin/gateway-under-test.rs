//! The real `chat-gateway` command, built inside the tests package so process-level tests
//! (SIGKILL, SIGTERM) can spawn it via `CARGO_BIN_EXE_gateway-under-test`.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chat_gateway::cli::main().await
}
