//! The `switchyard` command line: run a node, check a config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::Node;
use switchyard::cassandra::tokens;

/// glibc malloc spent a quarter of the REGISTER path in aligned task
/// allocations and heap growth, and kept freed transaction memory resident;
/// mimalloc does neither (see bench/README.md for the figures).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use switchyard::config::Config;
use switchyard::transport::ListenerSpec;

#[path = "cli/calls.rs"]
mod calls;
#[path = "cli/ops.rs"]
mod ops;
#[path = "cli/run.rs"]
mod run;
use ops::AdminArgs;
use run::{RunOverrides, Signal, Signals, block_on};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Stateful SIP proxy and registrar"
)]
struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    /// `text` (colours only on a terminal) or `json` (one object per line,
    /// with the span fields: Call-ID, branch, tenant).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a proxy node (UDP+TCP on 0.0.0.0:5060 and the embedded store by default).
    Run {
        /// TOML configuration file (every key optional).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listener, e.g. `udp:127.0.0.1:5090` or `tcp:[::1]:5060`; repeatable; replaces `listen`.
        #[arg(long = "listen", value_name = "PROTO:ADDR:PORT")]
        listen: Vec<ListenerSpec>,
        /// A domain the registrar serves; repeatable; replaces `domains`.
        #[arg(long = "domain", value_name = "DOMAIN")]
        domain: Vec<String>,
        /// Host[:port] to put in Via / Record-Route (needed behind a wildcard listener).
        #[arg(long)]
        advertise: Option<String>,
        /// This node's id.
        #[arg(long)]
        node_id: Option<String>,
        /// Turn digest authentication off (`[auth] enabled = false`): anyone
        /// may register as anyone and relay anywhere the egress allowlist
        /// permits. For benchmarks and closed labs only.
        #[arg(long)]
        no_auth: bool,
    },
    /// Validate a configuration file and print the effective settings.
    CheckConfig { file: PathBuf },
    /// Cassandra / ScyllaDB operator tools (docs/cassandra.md).
    #[command(subcommand)]
    Cassandra(CassandraCommand),
    /// Load and inspect tenant policies on a running node (docs/policies.md).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// A running node's state: uptime, listeners, store, transactions, connections.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a running node read its configuration file again (like SIGHUP):
    /// domains and tenants apply at once, validated first.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List or kick a running node's registrations.
    #[command(subcommand)]
    Registrations(ops::RegistrationsCommand),
    /// A running node's transaction tables.
    #[command(subcommand)]
    Transactions(ops::TransactionsCommand),
    /// A running node's tenants: domains and policies.
    #[command(subcommand)]
    Tenants(ops::TenantsCommand),
    /// Calls in progress per tenant, on the node and across the cluster.
    Calls {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// A running node's call detail records.
    #[command(subcommand)]
    Cdr(calls::CdrCommand),
    /// Subscribers of the embedded store (`[auth] subscribers`, docs/security.md).
    /// A running node re-reads the file when it changes.
    #[command(subcommand)]
    User(UserCommand),
}

/// Which subscriber file and realms a `user` command acts on.
#[derive(clap::Args)]
struct UserScope {
    /// The node's config: its `[auth] subscribers` file, and the domains
    /// of `--tenant`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The subscriber file itself (instead of `--config`).
    #[arg(long)]
    file: Option<PathBuf>,
    /// A running node's admin endpoint (its store, whichever it is).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// The admin token file, with `--admin` (default: `$SWITCHYARD_ADMIN_TOKEN`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The realm: a SIP domain; repeatable.
    #[arg(long = "domain", value_name = "DOMAIN")]
    domains: Vec<String>,
    /// Every domain of this tenant (`[tenants]`; `default` for all
    /// domains without one). Needs `--config`.
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (or replace its password) in each realm.
    Add {
        #[command(flatten)]
        scope: UserScope,
        user: String,
        /// The password; `-` reads one line from standard input.
        #[arg(long)]
        password: String,
    },
    /// Change an existing user's password.
    Passwd {
        #[command(flatten)]
        scope: UserScope,
        user: String,
        #[arg(long)]
        password: String,
    },
    /// Remove a user.
    Remove {
        #[command(flatten)]
        scope: UserScope,
        user: String,
    },
    /// List users (realm and name; never credentials).
    List {
        #[command(flatten)]
        scope: UserScope,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy component and make it the tenant's live version.
    /// In-flight calls finish on the old version; a refused module leaves it running.
    Load {
        /// The tenant (see `[tenants]`).
        #[arg(long)]
        tenant: String,
        /// One link of the tenant's chain (`[[tenants.chains.<tenant>]]`),
        /// swapped alone.
        #[arg(long)]
        link: Option<String>,
        /// A `.wasm` component built against wit/policy.wit.
        file: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show each tenant's policy: source, version, load time, calls, failures.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand)]
enum CassandraCommand {
    /// Print the keyspace and table CQL for `[store.cassandra]`; `--apply` runs it.
    Schema {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Execute the statements against the configured cluster.
        #[arg(long)]
        apply: bool,
    },
    /// Offset-mirror initial tokens for a multi-DC ring, plus the
    /// cassandra-topology.properties snippet and a note on vnodes.
    Tokens {
        /// A data centre and its node count, e.g. `DC0=2`; repeatable.
        #[arg(long = "dc", value_name = "NAME=NODES", required = true)]
        dc: Vec<String>,
        /// `random` (RandomPartitioner, 0..2^127) or `murmur3`.
        #[arg(long, default_value = "random")]
        partitioner: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        // journald and log files get no escape codes.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig { file } => {
            let config = Config::load(&file)?;
            let mut text = format!(
                "# {}: ok. Effective settings, secrets redacted:\n",
                file.display()
            );
            for warning in config.warnings() {
                text.push_str(&format!("# warning: {warning}\n"));
            }
            text.push_str(&config.redacted_toml());
            // `check-config FILE | head` closes the pipe early: not an error.
            match std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Cassandra(CassandraCommand::Tokens { dc, partitioner }) => {
            let partitioner: tokens::Partitioner = partitioner.parse()?;
            let dcs = tokens::parse_dcs(&dc)?;
            tokens::validate(&dcs, partitioner)?;
            print!(
                "{}",
                tokens::render(&tokens::plan(&dcs, partitioner), partitioner)
            );
            Ok(())
        }
        Command::Cassandra(CassandraCommand::Schema { config, apply }) => {
            let cfg = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            print!(
                "{}",
                switchyard::cassandra::schema_cql(&cfg.store.cassandra)
            );
            if apply {
                let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
                let mut cassandra = cfg.store.cassandra.clone();
                cassandra.create_schema = true;
                runtime.block_on(switchyard::cassandra::CassandraStore::connect(cassandra))?;
                eprintln!("schema applied");
            }
            Ok(())
        }
        Command::Policy(command) => block_on(policy_command(command)),
        Command::User(command) => user_command(command),
        Command::Status { admin } => block_on(ops::status(admin)),
        Command::Reload { admin } => block_on(ops::reload(admin)),
        Command::Registrations(command) => block_on(ops::registrations(command)),
        Command::Transactions(command) => block_on(ops::transactions(command)),
        Command::Tenants(command) => block_on(ops::tenants(command)),
        Command::Calls { admin } => block_on(calls::calls(admin)),
        Command::Cdr(command) => block_on(calls::cdr(command)),
        Command::Run {
            config,
            listen,
            domain,
            advertise,
            node_id,
            no_auth,
        } => {
            let overrides = RunOverrides {
                listen,
                domain,
                advertise,
                node_id,
                no_auth,
            };
            let cfg = overrides.apply(match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            });
            if no_auth {
                tracing::warn!(
                    "--no-auth: anyone may register as anyone and relay through this node"
                );
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(async {
                let drain = cfg.lifecycle.drain();
                // Handlers first: a SIGTERM that arrives once the node has
                // said "listening" must drain it, not kill it.
                let mut signals = Signals::new()?;
                let node = Node::start(cfg).await?;
                if let Some(path) = config {
                    let overrides = std::sync::Arc::new(overrides);
                    node.set_config_source(std::sync::Arc::new(move || {
                        Ok(overrides.apply(Config::load(&path)?))
                    }));
                }
                let signal = loop {
                    match signals.next().await {
                        Signal::Stop(name) => break name,
                        Signal::Reload => match node.reload().await {
                            Ok(_) => {}
                            Err(e) => tracing::error!("SIGHUP: the configuration was refused, the old one stays: {e:#}"),
                        },
                    }
                };
                tracing::info!(%signal, drain_ms = drain.as_millis() as u64, "draining: no new calls");
                tokio::select! {
                    drained = node.drain(drain) => {
                        if drained {
                            tracing::info!("drained");
                        }
                    }
                    signal = signals.next_stop() => tracing::warn!(%signal, "stopping without waiting"),
                }
                node.shutdown().await;
                tracing::info!("stopped");
                Ok(())
            })
        }
    }
}

async fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    use switchyard::admin::client;
    match command {
        PolicyCommand::Load {
            tenant,
            link,
            file,
            admin,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut path = format!(
                "/policies/{}?source={}",
                client::query_value(&tenant),
                client::query_value(&file.display().to_string())
            );
            if let Some(link) = &link {
                path.push_str(&format!("&link={}", client::query_value(link)));
            }
            let answer = client::call(&admin.endpoint()?, "PUT", &path, bytes).await?;
            let loaded: switchyard::admin::Loaded = serde_json::from_slice(&answer)?;
            println!(
                "tenant {tenant}: version {} live after {:.1} ms",
                loaded.status["version"].as_str().unwrap_or("?"),
                loaded.elapsed_ms
            );
            Ok(())
        }
        PolicyCommand::List { admin } => {
            let answer = client::call(&admin.endpoint()?, "GET", "/policies", Vec::new()).await?;
            if admin.json {
                println!("{}", String::from_utf8_lossy(&answer));
                return Ok(());
            }
            let list: Vec<serde_json::Value> = serde_json::from_slice(&answer)?;
            println!(
                "{:<16} {:<14} {:<29} {:>10} {:>9} {:<12} SOURCE",
                "TENANT", "VERSION", "LOADED", "CALLS", "FAILURES", "STATE"
            );
            for t in list {
                let loaded = t["loaded_at"].as_u64().unwrap_or(0);
                println!(
                    "{:<16} {:<14} {:<29} {:>10} {:>9} {:<12} {}",
                    t["tenant"].as_str().unwrap_or(""),
                    t["version"]
                        .as_str()
                        .filter(|v| !v.is_empty())
                        .unwrap_or("-"),
                    utc(loaded),
                    t["calls"].as_u64().unwrap_or(0),
                    t["failures"].as_u64().unwrap_or(0),
                    if t["quarantined"].as_bool().unwrap_or(false) {
                        "quarantined"
                    } else {
                        t["failure_mode"].as_str().unwrap_or("")
                    },
                    t["source"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
    }
}

fn user_command(command: UserCommand) -> anyhow::Result<()> {
    use switchyard::auth::Subscriber;
    let (scope, user, password, must_exist) = match command {
        UserCommand::Add {
            scope,
            user,
            password,
        } => (scope, Some(user), Some(password), false),
        UserCommand::Passwd {
            scope,
            user,
            password,
        } => (scope, Some(user), Some(password), true),
        UserCommand::Remove { scope, user } => (scope, Some(user), None, true),
        UserCommand::List { scope } => (scope, None, None, false),
    };
    let password = match password.as_deref() {
        Some("-") => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            Some(line.trim_end_matches(['\r', '\n']).to_string())
        }
        other => other.map(str::to_owned),
    };
    if password.as_deref() == Some("") {
        anyhow::bail!("an empty password is refused");
    }
    block_on(async {
        let (store, realms) = user_scope(&scope).await?;
        let Some(user) = user else {
            let mut all = Vec::new();
            if realms.is_empty() {
                all = store.list(None).await?;
            }
            for realm in &realms {
                all.extend(store.list(Some(realm)).await?);
            }
            for (realm, user) in all {
                println!("{realm}\t{user}");
            }
            return Ok(());
        };
        anyhow::ensure!(
            !realms.is_empty(),
            "name the realm: --domain D or --tenant T"
        );
        for realm in &realms {
            if must_exist && store.subscriber(realm, &user).await?.is_none() {
                anyhow::bail!("no user {user} in {realm}");
            }
        }
        for realm in &realms {
            match &password {
                Some(pw) => store.put(Subscriber::new(realm, &user, pw)).await?,
                None => {
                    store.remove(realm, &user).await?;
                }
            }
        }
        eprintln!(
            "{} subscribers: {user} in {}",
            store.backend(),
            realms.join(", ")
        );
        Ok(())
    })
}

/// The subscriber store and the realms (lowercase) a `user` command names:
/// a running node's (`--admin`), else `--file`, else the config's
/// `[auth] subscribers` file, else its Cassandra store.
async fn user_scope(
    scope: &UserScope,
) -> anyhow::Result<(Box<dyn switchyard::auth::SubscriberStore>, Vec<String>)> {
    use switchyard::auth::Subscribers;
    let config = scope.config.as_deref().map(Config::load).transpose()?;
    let store: Box<dyn switchyard::auth::SubscriberStore> = match (&scope.file, &config) {
        _ if let Some(admin) = scope.admin => Box::new(switchyard::admin::RemoteSubscribers {
            admin: switchyard::admin::Admin::new(admin, scope.token_file.as_deref())?,
        }),
        (Some(f), _) => Box::new(Subscribers::open(f)?),
        (None, Some(c)) => match (&c.auth.subscribers, c.store.backend.as_str()) {
            (Some(f), _) => Box::new(Subscribers::open(f)?),
            (None, "cassandra") => Box::new(
                switchyard::cassandra::CassandraStore::connect(c.store.cassandra.clone()).await?,
            ),
            (None, _) => anyhow::bail!(
                "the config has no `[auth] subscribers` file and no cassandra store; set one, or pass --file"
            ),
        },
        (None, None) => anyhow::bail!("pass --admin, --config or --file"),
    };
    let mut realms: Vec<String> = scope
        .domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    if let Some(tenant) = &scope.tenant {
        let config = config.as_ref().context("--tenant needs --config")?;
        let before = realms.len();
        realms.extend(
            config
                .domains
                .iter()
                .filter(|d| config.tenant_of(d) == tenant)
                .map(|d| d.to_ascii_lowercase()),
        );
        anyhow::ensure!(realms.len() > before, "tenant {tenant} has no domains");
    }
    Ok((store, realms))
}

/// Unix seconds as an RFC 1123 date.
fn utc(secs: u64) -> String {
    switchyard::registrar::http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
