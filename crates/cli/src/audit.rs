//! `wagate audit`.

#[derive(Debug, clap::Args)]
pub struct AuditArgs {}

pub async fn run(_args: AuditArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`wagate audit` is being built in this session")
}
