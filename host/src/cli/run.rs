//! What `switchyard run` needs around the node: the command line's
//! overrides (applied at start and at every reload) and the signals.

use anyhow::Context;
use switchyard::config::Config;
use switchyard::transport::ListenerSpec;

/// `run`'s command-line settings, applied over the file at start and at
/// every reload.
pub struct RunOverrides {
    pub listen: Vec<ListenerSpec>,
    pub domain: Vec<String>,
    pub advertise: Option<String>,
    pub node_id: Option<String>,
    pub no_auth: bool,
}

impl RunOverrides {
    pub fn apply(&self, mut cfg: Config) -> Config {
        if !self.listen.is_empty() {
            cfg.listen = self.listen.clone();
        }
        if !self.domain.is_empty() {
            cfg.domains = self.domain.clone();
        }
        if self.advertise.is_some() {
            cfg.advertise = self.advertise.clone();
        }
        if let Some(id) = &self.node_id {
            cfg.node_id = id.clone();
        }
        if self.no_auth {
            cfg.auth.enabled = false;
        }
        cfg
    }
}

pub fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(work)
}

/// SIGTERM (systemd, Kubernetes) and SIGINT (Ctrl-C) stop the node;
/// SIGHUP (`systemctl reload`) reloads its configuration.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

pub enum Signal {
    /// SIGTERM or SIGINT, by name.
    Stop(&'static str),
    /// SIGHUP.
    Reload,
}

impl Signals {
    pub fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }

    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }

    /// The next SIGTERM or SIGINT (a SIGHUP while draining is ignored).
    pub async fn next_stop(&mut self) -> &'static str {
        loop {
            if let Signal::Stop(name) = self.next().await {
                return name;
            }
        }
    }
}
