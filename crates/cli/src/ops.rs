//! Operator commands that act on a running hub through its HTTP API.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SendArgs {}
#[derive(Debug, clap::Args)]
pub struct OptInArgs {}
#[derive(Debug, clap::Args)]
pub struct OptOutArgs {}
#[derive(Debug, clap::Args)]
pub struct ContactArgs {}
#[derive(Debug, clap::Args)]
pub struct MessageArgs {}
#[derive(Debug, clap::Subcommand)]
pub enum TemplatesCommand {
    /// List templates.
    List,
}
#[derive(Debug, clap::Subcommand)]
pub enum SendersCommand {
    /// List senders.
    List,
}

fn pending() -> anyhow::Result<ExitCode> {
    anyhow::bail!("operator commands are being built in this session")
}

pub async fn send(_args: SendArgs) -> anyhow::Result<ExitCode> {
    pending()
}
pub async fn opt_in(_args: OptInArgs) -> anyhow::Result<ExitCode> {
    pending()
}
pub async fn opt_out(_args: OptOutArgs) -> anyhow::Result<ExitCode> {
    pending()
}
pub async fn contact(_args: ContactArgs) -> anyhow::Result<ExitCode> {
    pending()
}
pub async fn message(_args: MessageArgs) -> anyhow::Result<ExitCode> {
    pending()
}
pub async fn templates(_command: TemplatesCommand) -> anyhow::Result<ExitCode> {
    pending()
}
pub async fn senders(_command: SendersCommand) -> anyhow::Result<ExitCode> {
    pending()
}
