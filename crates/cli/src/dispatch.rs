//! `wagate dispatch` (owned by the dispatcher work: crates/dispatch provides the driver).

#[derive(Debug, clap::Args)]
pub struct DispatchArgs {}

pub async fn run(_args: DispatchArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`wagate dispatch` is being built in this session")
}
