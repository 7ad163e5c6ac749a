//! The operator commands that talk to a running node's admin endpoint:
//! `status`, `reload`, `registrations list|kick`, `transactions stats`,
//! `tenants list`. Each prints a table, or the endpoint's JSON with `--json`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use switchyard::admin::client::{self, query_value};
use switchyard::admin::{
    Admin, NodeStatus, Registration, ReloadReport, TenantInfo, TransactionStats,
};

/// Which node, with which token, and how to print.
#[derive(clap::Args, Clone)]
pub struct AdminArgs {
    /// The node's admin endpoint (`[admin] listen`).
    #[arg(long, default_value = switchyard::admin::DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// The file holding the admin token (`[admin] token_file`); default:
    /// `$SWITCHYARD_ADMIN_TOKEN`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print the endpoint's JSON instead of a table (for scripts).
    #[arg(long)]
    pub json: bool,
}

impl AdminArgs {
    pub fn endpoint(&self) -> anyhow::Result<Admin> {
        Admin::new(self.admin, self.token_file.as_deref())
    }

    pub async fn get(&self, method: &str, path: &str) -> anyhow::Result<bytes::Bytes> {
        client::call(&self.endpoint()?, method, path, Vec::new()).await
    }
}

#[derive(Subcommand)]
pub enum RegistrationsCommand {
    /// Registered AORs with their contacts, in AOR order.
    List {
        #[command(flatten)]
        admin: AdminArgs,
        /// Only this tenant's domains.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only this user (case-sensitive).
        #[arg(long)]
        user: Option<String>,
        /// Most AORs to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Remove an AOR's bindings (or one contact's): the phone is unreachable
    /// until it registers again.
    Kick {
        #[command(flatten)]
        admin: AdminArgs,
        /// `user@domain`.
        aor: String,
        /// Only the binding with this Contact URI.
        #[arg(long)]
        contact: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TransactionsCommand {
    /// Live transactions and the transaction counters.
    Stats {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// Every tenant with its domains and policy.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

pub fn print_json(body: &[u8]) -> anyhow::Result<()> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

pub async fn registrations(command: RegistrationsCommand) -> anyhow::Result<()> {
    match command {
        RegistrationsCommand::List {
            admin,
            tenant,
            domain,
            user,
            limit,
        } => {
            let mut path = format!("/registrations?limit={limit}");
            for (key, value) in [("tenant", tenant), ("domain", domain), ("user", user)] {
                if let Some(value) = value {
                    path.push_str(&format!("&{key}={}", query_value(&value)));
                }
            }
            let body = admin.get("GET", &path).await?;
            if admin.json {
                return print_json(&body);
            }
            let list: Vec<Registration> = serde_json::from_slice(&body)?;
            println!(
                "{:<32} {:<12} {:<48} {:>7} {:<5} {:<22} NODE",
                "AOR", "TENANT", "CONTACT", "EXPIRES", "VIA", "RECEIVED"
            );
            for r in &list {
                for b in &r.bindings {
                    println!(
                        "{:<32} {:<12} {:<48} {:>7} {:<5} {:<22} {}",
                        r.aor,
                        r.tenant,
                        b.contact,
                        b.expires_in,
                        b.transport,
                        b.received,
                        b.node.as_deref().unwrap_or("-")
                    );
                }
            }
            eprintln!(
                "{} AORs, {} contacts",
                list.len(),
                list.iter().map(|r| r.bindings.len()).sum::<usize>()
            );
            Ok(())
        }
        RegistrationsCommand::Kick {
            admin,
            aor,
            contact,
        } => {
            let mut path = format!("/registrations?aor={}", query_value(&aor));
            if let Some(contact) = &contact {
                path.push_str(&format!("&contact={}", query_value(contact)));
            }
            let body = admin.get("DELETE", &path).await?;
            if admin.json {
                return print_json(&body);
            }
            let kicked: switchyard::admin::registrations::Kicked = serde_json::from_slice(&body)?;
            println!("{aor}: {} binding(s) removed", kicked.removed);
            Ok(())
        }
    }
}

pub async fn transactions(
    TransactionsCommand::Stats { admin }: TransactionsCommand,
) -> anyhow::Result<()> {
    let body = admin.get("GET", "/transactions").await?;
    if admin.json {
        return print_json(&body);
    }
    let t: TransactionStats = serde_json::from_slice(&body)?;
    println!(
        "server transactions   {} ({} unanswered, {} completed)\n\
         client transactions   {}\n\
         timers                {}\n\
         limit                 {}\n\
         requests              {}\n\
         responses             {}\n\
         retransmissions absorbed {}\n\
         refused at the limit  {}",
        t.server,
        t.unanswered,
        t.completed,
        t.client,
        t.timers,
        t.max,
        t.requests_total,
        t.responses_total,
        t.retransmissions_absorbed_total,
        t.overloaded_total
    );
    Ok(())
}

pub async fn tenants(TenantsCommand::List { admin }: TenantsCommand) -> anyhow::Result<()> {
    let body = admin.get("GET", "/tenants").await?;
    if admin.json {
        return print_json(&body);
    }
    let list: Vec<TenantInfo> = serde_json::from_slice(&body)?;
    println!(
        "{:<16} {:<14} {:<28} DOMAINS",
        "TENANT", "VERSION", "POLICY"
    );
    for t in list {
        let domains = if t.default && t.domains.is_empty() {
            "(every other domain)".to_string()
        } else {
            t.domains.join(", ")
        };
        println!(
            "{:<16} {:<14} {:<28} {domains}",
            t.tenant,
            t.policy["version"]
                .as_str()
                .filter(|v| !v.is_empty())
                .unwrap_or("-"),
            t.policy["source"].as_str().unwrap_or("native"),
        );
    }
    Ok(())
}

pub async fn status(admin: AdminArgs) -> anyhow::Result<()> {
    let body = admin.get("GET", "/status").await?;
    if admin.json {
        return print_json(&body);
    }
    let s: NodeStatus = serde_json::from_slice(&body)?;
    let connections: Vec<String> = s
        .connections
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!(
        "node         {} (switchyard {})\n\
         state        {}\n\
         uptime       {} s\n\
         domains      {}\n\
         listeners    {}\n\
         store        {}{}\n\
         transactions {} server ({} unanswered), {} client\n\
         calls        {}\n\
         connections  {}",
        s.node_id,
        s.version,
        if s.draining { "draining" } else { "running" },
        s.uptime_secs,
        s.domains.join(", "),
        s.listeners.join(", "),
        s.store,
        s.bindings
            .map_or_else(String::new, |n| format!(", {n} bindings")),
        s.transactions.server,
        s.transactions.unanswered,
        s.transactions.client,
        s.dialogs,
        if connections.is_empty() {
            "none".into()
        } else {
            connections.join(", ")
        },
    );
    Ok(())
}

pub async fn reload(admin: AdminArgs) -> anyhow::Result<()> {
    let body = admin
        .get("POST", "/reload")
        .await
        .context("the node refused the new configuration (the old one stays)")?;
    if admin.json {
        return print_json(&body);
    }
    let r: ReloadReport = serde_json::from_slice(&body)?;
    println!("reloaded: domains {}", r.domains.join(", "));
    if !r.policies_changed.is_empty() {
        println!("policies changed: {}", r.policies_changed.join(", "));
    }
    if !r.restart_needed.is_empty() {
        println!(
            "changed but applied only at the next start: {}",
            r.restart_needed.join(", ")
        );
    }
    Ok(())
}
