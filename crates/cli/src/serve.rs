//! `wagate serve` (owned by the HTTP work: crates/http provides the server).

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub async fn run(_args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`wagate serve` is being built in this session")
}
