#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chat_gateway::cli::main().await
}
