//! The `ferrolite` binary: parses the command line and runs it. No logic lives here.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ferrolite::admin::cli::{Cli, Command};
use ferrolite::app::App;
use ferrolite::config::{Config, Purpose};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if matches!(cli.command, Command::Serve) {
                    "info"
                } else {
                    "warn"
                })
            }),
        )
        .init();

    // The CLI uses the service's settings (/etc/default/ferrolite or FERROLITE_ENV_FILE).
    if !matches!(cli.command, Command::Serve) {
        if let Some(path) = ferrolite::envfile::service_env_path() {
            if let Err(e) = ferrolite::envfile::load(&path) {
                eprintln!("ferrolite: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if let Command::NginxConfig = cli.command {
        let rendered = Config::from_env(Purpose::Cli)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                ferrolite::playback::nginx::render(&c, &|p| p.exists()).map_err(|e| e.to_string())
            });
        return match rendered {
            Ok(site) => {
                print!("{site}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferrolite: cannot render the nginx configuration: {e}");
                ExitCode::from(1)
            }
        };
    }
    let purpose = if matches!(cli.command, Command::Serve) {
        Purpose::Serve
    } else {
        Purpose::Cli
    };
    let config = match Config::from_env(purpose) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrolite: {e}");
            return ExitCode::from(1);
        }
    };
    let owner = if purpose == Purpose::Cli {
        match ferrolite::admin::ownership::guard(&config.database_path, cli.fix_ownership) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("ferrolite: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrolite: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        if let Command::Db { .. } = cli.command {
            return match ferrolite::store::backends::migrate(&config).await {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ferrolite: {e}");
                    ExitCode::from(1)
                }
            };
        }
        let opened = match cli.command {
            Command::Serve => ferrolite::store::backends::open_to_serve(&config).await,
            _ => ferrolite::store::backends::open(&config).await,
        };
        let stores = match opened {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ferrolite: {e}");
                return ExitCode::from(1);
            }
        };
        let db = config.database_path.clone();
        let app = App::new(config, stores);
        let code = match cli.command {
            Command::Serve => serve(app).await,
            command => match ferrolite::admin::cli::run(app, command).await {
                Ok(outcome) => outcome.into(),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            },
        };
        if let Some(owner) = owner {
            if let Err(e) = ferrolite::admin::ownership::fix(&db, owner) {
                eprintln!("ferrolite: {e}");
                return ExitCode::from(1);
            }
        }
        code
    })
}

async fn serve(app: Arc<App>) -> ExitCode {
    use ferrolite::http::Listener;
    let listener = match Listener::bind(&app.config.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "ferrolite: cannot listen on {} (BIND/PORT): {e}",
                app.config.bind
            );
            return ExitCode::from(1);
        }
    };
    let (trigger, shutdown) = ferrolite::shutdown::channel();
    println!("ferrolite: listening on {}", listener.describe());
    tracing::info!(address = %listener.describe(), database = %app.config.database_path.display(), "ferrolite serving");

    let mut tasks = Vec::new();
    if app.config.poller_enabled {
        tasks.push(tokio::spawn(ferrolite::poller::run(
            app.clone(),
            shutdown.clone(),
        )));
    }
    if app.config.recordings.importer_enabled {
        tasks.push(tokio::spawn(ferrolite::recordings::importer::run(
            app.clone(),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(ferrolite::playback::run_links(
        app.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(ferrolite::callbacks::run(
        app.clone(),
        shutdown.clone(),
    )));
    {
        let app = app.clone();
        let mut shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.recv() => break,
                    _ = tokio::time::sleep(ferrolite::app::LOAD_FLUSH_INTERVAL) => app.flush_load().await,
                }
            }
        }));
    }
    tasks.push(tokio::spawn(ferrolite::autoscaler::run(
        app.clone(),
        shutdown.clone(),
    )));
    if let Some(addr) = app.config.ops.metrics_bind {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(address = %addr, "metrics listener (METRICS_BIND)");
                tasks.push(tokio::spawn(ferrolite::api::ops::serve_metrics(
                    app.clone(),
                    l,
                    shutdown.clone(),
                )));
            }
            Err(e) => {
                eprintln!("ferrolite: cannot listen on {addr} (METRICS_BIND): {e}");
                return ExitCode::from(1);
            }
        }
    }
    let server = tokio::spawn(ferrolite::api::serve(app.clone(), listener, shutdown));
    ferrolite::shutdown::signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    trigger.fire();
    let _ = server.await;
    for t in tasks {
        let _ = t.await;
    }
    app.flush_load().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
