//! `wagate export`.

#[derive(Debug, clap::Args)]
pub struct ExportArgs {}

pub async fn run(_args: ExportArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`wagate export` is being built in this session")
}
