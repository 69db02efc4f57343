//! The `corral` command: flags and config file → [`corral::Config`]; logging; bind; serve.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use corral::config::{Config, HostPort, Mode};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A Kafka-compatible broker and group coordinator in one binary, for development and tests.
///
/// Plain `corral` is a complete single-node Kafka. `corral proxy --upstream HOST:PORT` stands in
/// front of a real Kafka cluster: it forwards the data plane and serves consumer groups itself.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on (port 0 picks a free port). In proxy mode: the bootstrap address
    /// and corral's own node; each upstream broker gets a listener on a port derived from it.
    #[arg(long, global = true, value_name = "HOST:PORT", env = "CORRAL_LISTEN")]
    listen: Option<String>,
    /// Address given to clients in Metadata and FindCoordinator [default: the listen address].
    #[arg(long, global = true, value_name = "HOST:PORT", env = "CORRAL_ADVERTISED")]
    advertised: Option<String>,
    /// Data directory; locked so two servers cannot share it [default: ./corral-data].
    #[arg(long, global = true, value_name = "DIR", env = "CORRAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory and touch no directory.
    #[arg(long, global = true, env = "CORRAL_EPHEMERAL")]
    ephemeral: bool,
    /// TOML config file whose keys are Kafka's setting names (num.partitions, ...).
    #[arg(long, global = true, value_name = "FILE", env = "CORRAL_CONFIG")]
    config: Option<PathBuf>,
    /// Serve Prometheus metrics on this address.
    #[arg(long, global = true, value_name = "HOST:PORT", env = "CORRAL_METRICS")]
    metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stand in front of an upstream Kafka cluster: forward the data plane to its brokers and
    /// serve consumer groups (FindCoordinator, JoinGroup, ..., OffsetCommit/Fetch) here.
    Proxy(ProxyArgs),
}

#[derive(Debug, clap::Args)]
struct ProxyArgs {
    /// Bootstrap brokers of the upstream cluster (config key `upstream.bootstrap.servers`).
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]", env = "CORRAL_UPSTREAM")]
    upstream: Option<String>,
    /// Where the coordinator keeps its records: `upstream` (a compacted topic on the upstream
    /// cluster, the default) or `local` (the data dir).
    #[arg(long, value_name = "upstream|local", env = "CORRAL_OFFSETS_STORE")]
    offsets_store: Option<String>,
    /// Also commit every committed offset to the upstream cluster, member-less, so tools
    /// pointed at it see the progress [default: true].
    #[arg(long, value_name = "BOOL", env = "CORRAL_MIRROR_OFFSETS", num_args = 0..=1, default_missing_value = "true")]
    mirror_offsets: Option<bool>,
    /// Share the coordinator with every proxy of this name in front of the same upstream
    /// (config key `proxy.cluster.name`): each serves the shards the upstream group
    /// `__corral-<NAME>` assigns it. Unset: this proxy serves every shard.
    #[arg(long, value_name = "NAME", env = "CORRAL_CLUSTER_NAME")]
    cluster_name: Option<String>,
}

fn load(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(l) = &cli.listen {
        config.listen = l.clone();
    }
    if let Some(a) = &cli.advertised {
        config.advertised = Some(HostPort::parse(a).map_err(|e| format!("--advertised: {e}"))?);
    }
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    if cli.ephemeral {
        config.ephemeral = true;
    }
    if cli.metrics.is_some() {
        config.metrics_listen = cli.metrics;
    }
    if let Some(Command::Proxy(p)) = &cli.command {
        config.mode = Mode::Proxy;
        if let Some(u) = &p.upstream {
            config.upstream = corral::config::parse_upstream(u).map_err(|e| format!("--upstream: {e}"))?;
        }
        if let Some(s) = &p.offsets_store {
            config.offsets_store = corral::config::parse_offsets_store(s).map_err(|e| format!("--offsets-store: {e}"))?;
        }
        if let Some(m) = p.mirror_offsets {
            config.mirror_offsets = m;
        }
        if let Some(n) = &p.cluster_name {
            config.proxy_cluster_name = Some(corral::config::parse_cluster_name(n).map_err(|e| format!("--cluster-name: {e}"))?);
        }
        if config.upstream.is_empty() {
            return Err(
                "proxy mode needs --upstream HOST:PORT (or CORRAL_UPSTREAM, or upstream.bootstrap.servers in the config file)".into()
            );
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives right after the start line is printed stops the server
/// gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    tracing::warn!("cannot install signal handlers; stop corral with SIGKILL");
                    std::future::pending::<()>().await
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // RUST_LOG: a level, or `target=level` directives (`corral=debug,info`); `info` without it
    // (or when it does not parse). A target filter, not tracing's EnvFilter: its span and field
    // filters would bring a regex engine into every start-up for a feature no one here uses.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).with(filter).init();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corral: {e}");
            return ExitCode::from(2);
        }
    };
    for key in &config.unknown_keys {
        tracing::warn!("the configuration '{key}' was supplied but isn't a known config");
    }
    // As the JVM does for Kafka: as many open files as the hard limit allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!("open file limit: {n}; serving at most {} connections at once", config.connection_limit()),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corral: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        if let Some(addr) = config.metrics_listen
            && let Err(e) = metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(addr).install()
        {
            eprintln!("corral: cannot serve metrics on {addr}: {e}");
            return ExitCode::FAILURE;
        }
        let listener = match corral::server::bind(&config.listen, config.socket_listen_backlog_size).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("corral: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let mode = config.mode;
        let opened = match mode {
            Mode::Broker => corral::Server::open(listener, config),
            Mode::Proxy => corral::Server::open_proxy(listener, config).await,
        };
        let server = match opened {
            Ok(s) => s,
            Err(e) => {
                eprintln!("corral: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stop = shutdown_signal();
        let bound = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let mode = match mode {
            Mode::Broker => "broker",
            Mode::Proxy => "proxy",
        };
        println!(
            "corral {} {mode} listening on {bound}, advertised as {}, {}",
            env!("CARGO_PKG_VERSION"),
            server.advertised(),
            server.describe()
        );
        match server.run(stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("corral: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
