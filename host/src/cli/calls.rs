//! `switchyard calls` and `switchyard cdr tail`: the dialog layer of a
//! running node (`GET /calls`, `GET /cdrs`).

use std::time::Duration;

use clap::Subcommand;
use switchyard::admin::{CdrLine, TenantCalls};

use crate::ops::{AdminArgs, print_json};

/// How often `cdr tail --follow` asks for new CDRs.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

#[derive(Subcommand)]
pub enum CdrCommand {
    /// The node's latest CDRs, one JSON object per line (the CDR file's
    /// format); with `--follow`, then every new one as it is written.
    Tail {
        #[command(flatten)]
        admin: AdminArgs,
        /// How many of the latest to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Keep printing new CDRs until interrupted.
        #[arg(short, long)]
        follow: bool,
    },
}

pub async fn calls(admin: AdminArgs) -> anyhow::Result<()> {
    let body = admin.get("GET", "/calls").await?;
    if admin.json {
        return print_json(&body);
    }
    let list: Vec<TenantCalls> = serde_json::from_slice(&body)?;
    println!("{:<24} {:>8} {:>8}", "TENANT", "NODE", "CLUSTER");
    for t in &list {
        println!("{:<24} {:>8} {:>8}", t.tenant, t.node, t.cluster);
    }
    if list.is_empty() {
        eprintln!("no calls in progress");
    }
    Ok(())
}

pub async fn cdr(
    CdrCommand::Tail {
        admin,
        lines,
        follow,
    }: CdrCommand,
) -> anyhow::Result<()> {
    let mut after = None;
    let mut path = format!("/cdrs?limit={lines}");
    loop {
        let body = admin.get("GET", &path).await?;
        let batch: Vec<CdrLine> = serde_json::from_slice(&body)?;
        for line in &batch {
            println!("{}", serde_json::to_string(&line.record)?);
        }
        after = batch.last().map(|l| l.seq).or(after);
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        path = match after {
            Some(seq) => format!("/cdrs?after={seq}&limit=1000"),
            None => "/cdrs?limit=1000".into(),
        };
    }
}
