//! The `chat-gateway` binary: everything lives in the library (`chat_gateway::cli`).

/// mimalloc instead of glibc malloc: per-message allocations (frames, JSON values) made malloc the
/// largest user-space cost in profiles under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chat_gateway::cli::main().await
}
