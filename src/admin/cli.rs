//! The `ferrolite` command line: argument definitions and output formatting.
//!
//! Commands are named after Scalelite's rake tasks (`servers add`, `poll`, `status`,
//! `meetings end` …). Failures print one `error: …` line that says what to do and exit 1.

use std::io::{BufRead, Write};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use super::exit::Outcome;
use super::progress::Display;
use super::{meetings, servers, tenants, views, AdminError, AdminResult};
use crate::app::App;
use crate::store::{Server, ServerState};
use crate::tenant::TenantScope;

#[derive(Parser, Debug)]
#[command(
    name = "ferrolite",
    version,
    about = "A load balancer for BigBlueButton, compatible with Scalelite"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// As root: hand the database files back to their owner (the service user) instead of
    /// refusing to create files it could not write.
    #[arg(long, global = true)]
    pub fix_ownership: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server and the background roles: poller, recording importer, callback delivery.
    Serve,
    /// List the BBB servers, or manage them.
    Servers {
        #[command(subcommand)]
        command: Option<ServersCommand>,
        /// Print each server's secret too.
        #[arg(long)]
        show_secrets: bool,
        /// Print the list as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Poll every server once, now, and print what was found; exits 3 when a polled
    /// server is offline or did not answer.
    Poll {
        /// Print the reports as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
        /// Exit 0 even when a server is offline or did not answer.
        #[arg(long)]
        allow_offline: bool,
    },
    /// A table of every server: state, health, meetings, users, load, id.
    Status {
        /// Print the rows as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// List, inspect or end meetings.
    Meetings {
        #[command(subcommand)]
        command: Option<MeetingsCommand>,
        /// Print the list as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Import, list, publish, unpublish, delete or prune recordings.
    Recordings {
        #[command(subcommand)]
        command: RecordingsCommand,
    },
    /// List the tenants (MULTITENANCY_ENABLED), or manage them.
    Tenants {
        #[command(subcommand)]
        command: Option<TenantsCommand>,
        /// Print the list as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the nginx configuration rendered from the environment (URL_HOST, BIND,
    /// RECORDING_PUBLISH_DIR, PLAYBACK_LINK_DIR, NGINX_SSL, NGINX_BEHIND_PROXY,
    /// NGINX_RECORDINGS_ONLY, NGINX_LISTEN); needs no database.
    NginxConfig,
    /// Per-tenant default and override parameters for create and join.
    TenantSettings {
        #[command(subcommand)]
        command: TenantSettingsCommand,
    },
    /// Usage per day (meetings, minutes, participants, recordings), per tenant and for the pool.
    Usage(crate::usage::UsageArgs),
    /// Check this host: settings, database, recording dirs, nginx, player, BBB servers,
    /// clocks, certificate; each ok/warn/fail with what to do.
    Doctor(super::doctor::DoctorArgs),
    /// Carry a Scalelite's state over (its Redis and PostgreSQL are only read).
    Scalelite {
        #[command(subcommand)]
        command: crate::scalelite::cli::ScaleliteCommand,
    },
    /// The shared database (DATABASE_URL=postgres://...).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Apply PostgreSQL's missing migrations (serve also applies them on start).
    Migrate,
}

#[derive(Subcommand, Debug)]
pub enum RecordingsCommand {
    /// Import a tarball, a directory of tarballs, or an extracted <format>/<recordID>/ tree
    /// (indexed where it lies, e.g. Scalelite's published or unpublished dir; never copied).
    /// One import runs at a time (a lock next to the database): a second one exits 75 at
    /// once, or waits with --wait. Exits 0 when all went in, 3 when some did not, 1 when
    /// none did.
    Import {
        path: std::path::PathBuf,
        /// Print only problems (for cron).
        #[arg(long, short)]
        quiet: bool,
        /// Wait for a running import to finish instead of exiting.
        #[arg(long)]
        wait: bool,
        /// Print the summary, imported recordings and problems as JSON.
        #[arg(long)]
        json: bool,
        /// Trees only: print what would be indexed, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List recordings (newest first), all or one meeting's.
    List {
        #[arg(long)]
        meeting: Option<String>,
        /// Print the list as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Publish a recording (move its files to RECORDING_PUBLISH_DIR).
    Publish { id: String },
    /// Unpublish a recording (move its files to RECORDING_UNPUBLISH_DIR).
    Unpublish { id: String },
    /// Delete a recording: its files, and its index entry (kept as a `deleted` tombstone).
    Delete { id: String },
    /// Delete recordings that started more than DAYS days ago.
    Prune {
        #[arg(long, value_name = "DAYS")]
        older_than: u64,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantsCommand {
    /// List every tenant.
    List {
        /// Print each tenant's secrets too.
        #[arg(long)]
        show_secrets: bool,
        /// Print the list as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Add a tenant; its host is `<name>.<BASE_URL>`.
    Add {
        name: String,
        /// One or more secrets, separated by ':'.
        secrets: String,
    },
    /// Change a tenant's name, secrets or limits (a limit of 0 removes it).
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        secrets: Option<String>,
        /// Concurrent meetings allowed.
        #[arg(long)]
        max_meetings: Option<u32>,
        /// Concurrent participants allowed over all the tenant's meetings.
        #[arg(long)]
        max_participants: Option<u32>,
    },
    /// Remove a tenant and its settings; refused while it has meetings unless --force.
    Remove {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Send the tenant's meetings an xAPI/LRS endpoint with basic credentials.
    UpdateLrsBasic {
        id: String,
        lrs_endpoint: String,
        lrs_username: String,
        lrs_password: String,
    },
    /// Send the tenant's meetings an xAPI/LRS endpoint with a token from Keycloak/OIDC.
    UpdateLrsKc {
        id: String,
        lrs_endpoint: String,
        kc_token_url: String,
        kc_client_id: String,
        kc_client_secret: String,
        kc_username: String,
        kc_password: String,
    },
    /// Stop sending an LRS payload for the tenant's meetings.
    RemoveLrs { id: String },
}

#[derive(Subcommand, Debug)]
pub enum TenantSettingsCommand {
    /// List a tenant's settings.
    List { tenant_id: String },
    /// Add a setting: a default the request may change, or with --override a forced value.
    Add {
        tenant_id: String,
        param: String,
        value: String,
        #[arg(long = "override")]
        is_override: bool,
    },
    /// Remove a setting by its id.
    Remove { id: String },
}

#[derive(Subcommand, Debug)]
pub enum ServersCommand {
    /// List every server.
    List {
        #[arg(long)]
        show_secrets: bool,
        /// Print the list as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Add a server (it starts disabled; enable it to take meetings).
    Add {
        /// The API URL, e.g. https://bbb1.example.com/bigbluebutton/api
        url: String,
        /// The server's shared secret (`bbb-conf --secret`).
        secret: String,
        #[arg(long)]
        load_multiplier: Option<f64>,
        #[arg(long)]
        tag: Option<String>,
    },
    /// Change a server's secret, load multiplier or tag (`--tag ""` removes the tag).
    Update {
        id: String,
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        load_multiplier: Option<f64>,
        #[arg(long)]
        tag: Option<String>,
    },
    /// Let the server take new meetings.
    Enable { id: String },
    /// Stop using the server; refuses while it holds meetings unless --yes.
    Disable {
        id: String,
        /// End the server's meetings.
        #[arg(long)]
        yes: bool,
    },
    /// Take no new meetings; disable once the running ones are over.
    Cordon { id: String },
    /// Forget (and end) every meeting on the server and disable it.
    Panic {
        id: String,
        /// Keep the server's state instead of disabling it.
        #[arg(long)]
        keep_state: bool,
        /// Do not send `end` to the server (it is unreachable).
        #[arg(long)]
        skip_end_calls: bool,
    },
    /// Remove the server; refuses while it holds meetings unless --force.
    Remove {
        id: String,
        /// End the server's meetings and remove it.
        #[arg(long)]
        force: bool,
    },
    /// Make the pool match a YAML file (Scalelite's servers:sync format; `-` reads stdin).
    Sync {
        file: String,
        /// What happens to servers the file does not list.
        #[arg(long, value_enum, default_value = "cordon")]
        mode: super::sync::Mode,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the pool in the sync file format.
    Yaml {
        /// Also print state, load, BBB version and health.
        #[arg(long)]
        verbose: bool,
    },
    /// Add every server of a YAML list of {url, secret} (Scalelite's servers:addAll).
    AddAll { file: String },
    /// Set a server's load multiplier.
    LoadMultiplier { id: String, multiplier: f64 },
    /// List the meetings each server reports right now (all servers, or the given ids).
    MeetingList { ids: Vec<String> },
}

#[derive(Subcommand, Debug)]
pub enum MeetingsCommand {
    /// List meetings and their servers (all, or the given ids).
    List {
        ids: Vec<String>,
        /// Print the list as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// End meetings (the given ids, or all after confirmation).
    End {
        ids: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Ask the meeting's server about it.
    Info { id: String },
}

/// Splits Scalelite-style `a:b:c` id lists as well as separate arguments.
fn split_ids(ids: &[String]) -> Vec<String> {
    ids.iter()
        .flat_map(|i| i.split(':'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn fmt_load(load: Option<f64>) -> String {
    load.map(|l| format!("{l:.1}"))
        .unwrap_or_else(|| "unavailable".into())
}

fn print_server(out: &mut impl Write, s: &Server, show_secret: bool) -> std::io::Result<()> {
    writeln!(out, "id: {}", s.id)?;
    writeln!(out, "\turl: {}", s.url)?;
    if show_secret {
        writeln!(out, "\tsecret: {}", s.secret)?;
    }
    writeln!(out, "\t{}", s.state)?;
    writeln!(out, "\tload: {}", fmt_load(s.load))?;
    writeln!(out, "\tload multiplier: {:.1}", s.load_multiplier)?;
    writeln!(out, "\tbbb version: {}", s.bbb_version)?;
    writeln!(out, "\ttag: {}", s.tag.as_deref().unwrap_or(""))?;
    writeln!(out, "\t{}", if s.online { "online" } else { "offline" })
}

/// Runs an admin command; the error is printed by `main`, the outcome is the exit code.
pub async fn run(app: Arc<App>, command: Command) -> AdminResult<Outcome> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    match command {
        Command::Serve | Command::NginxConfig | Command::Db { .. } => {
            unreachable!("handled by main")
        }
        Command::Servers {
            command: None,
            show_secrets,
            json,
        }
        | Command::Servers {
            command: Some(ServersCommand::List { show_secrets, json }),
            ..
        } => {
            let list = app.store.servers().await?;
            if json {
                let views: Vec<_> = list
                    .iter()
                    .map(|s| views::ServerView::new(s, show_secrets))
                    .collect();
                views::write_json(&mut out, &views).map_err(io)?;
            } else {
                if list.is_empty() {
                    eprintln!("No servers are configured");
                }
                for s in &list {
                    print_server(&mut out, s, show_secrets).map_err(io)?;
                }
            }
        }
        Command::Servers {
            command: Some(cmd), ..
        } => servers_command(&app, cmd, &mut out).await?,
        Command::Poll {
            json,
            allow_offline,
        } => {
            let reports: Vec<views::PollView> = crate::poller::poll_once(&app)
                .await?
                .iter()
                .map(views::PollView::new)
                .collect();
            print_poll(&mut out, &reports, json).map_err(io)?;
            if !allow_offline && reports.iter().any(views::PollView::is_problem) {
                return Ok(Outcome::Problems);
            }
        }
        Command::Status { json } => status(&app, &mut out, json).await?,
        Command::Usage(args) => crate::usage::cli(&app, &args, &mut out).await?,
        Command::Recordings { command } => {
            return recordings_command(&app, command, &mut out).await
        }
        Command::Tenants { command, json } => {
            tenants_command(
                &app,
                command.unwrap_or(TenantsCommand::List {
                    show_secrets: false,
                    json,
                }),
                &mut out,
            )
            .await?
        }
        Command::TenantSettings { command } => {
            tenant_settings_command(&app, command, &mut out).await?
        }
        Command::Meetings { command, json } => {
            meetings_command(
                &app,
                command.unwrap_or(MeetingsCommand::List { ids: vec![], json }),
                &mut out,
            )
            .await?
        }
        Command::Scalelite { command } => crate::scalelite::cli::run(&app, command).await?,
        Command::Doctor(args) => {
            let checks = super::doctor::run(&app, &args).await;
            write!(out, "{}", super::doctor::render(&checks)).map_err(io)?;
            if checks.iter().any(|c| c.level == super::doctor::Level::Fail) {
                return Err(AdminError::Invalid("some checks failed (see above)".into()));
            }
        }
    }
    Ok(Outcome::Ok)
}

fn print_poll(out: &mut dyn Write, reports: &[views::PollView], json: bool) -> std::io::Result<()> {
    if json {
        return views::write_json(out, &reports);
    }
    if reports.is_empty() {
        writeln!(
            out,
            "No servers to poll (only enabled and cordoned servers are polled)"
        )?;
    }
    for r in reports {
        let health = if r.online { "online" } else { "offline" };
        match &r.error {
            None => writeln!(out, "{}: {health}, load {}", r.id, fmt_load(r.load))?,
            Some(e) => writeln!(out, "{}: {health} (poll failed: {e})", r.id)?,
        }
    }
    Ok(())
}

async fn servers_command(app: &App, cmd: ServersCommand, out: &mut impl Write) -> AdminResult<()> {
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    let ok = |out: &mut dyn Write| writeln!(out, "OK").map_err(io);
    match cmd {
        ServersCommand::List { .. } => unreachable!("handled by run"),
        ServersCommand::Add {
            url,
            secret,
            load_multiplier,
            tag,
        } => {
            let s = servers::add(app, &url, &secret, load_multiplier, tag).await?;
            ok(out)?;
            writeln!(out, "id: {}", s.id).map_err(io)?;
        }
        ServersCommand::Update {
            id,
            secret,
            load_multiplier,
            tag,
        } => {
            if secret.is_none() && load_multiplier.is_none() && tag.is_none() {
                return Err(AdminError::Invalid(
                    "nothing to update; give --secret, --load-multiplier or --tag".into(),
                ));
            }
            servers::update(app, &id, secret, load_multiplier, tag).await?;
            ok(out)?;
        }
        ServersCommand::Enable { id } => {
            servers::set_state(app, &id, ServerState::Enabled).await?;
            ok(out)?;
        }
        ServersCommand::Cordon { id } => {
            servers::set_state(app, &id, ServerState::Cordoned).await?;
            ok(out)?;
        }
        ServersCommand::Disable { id, yes } => {
            let (_, ended) = servers::disable(app, &id, yes).await?;
            for m in ended {
                writeln!(out, "Clearing Meeting id={}", m.meeting_id).map_err(io)?;
            }
            ok(out)?;
        }
        ServersCommand::Panic {
            id,
            keep_state,
            skip_end_calls,
        } => {
            let (_, ended) = servers::panic(app, &id, keep_state, skip_end_calls).await?;
            for m in ended {
                writeln!(out, "Clearing Meeting id={}", m.meeting_id).map_err(io)?;
            }
            ok(out)?;
        }
        ServersCommand::Remove { id, force } => {
            for m in servers::remove(app, &id, force).await? {
                writeln!(out, "Clearing Meeting id={}", m.meeting_id).map_err(io)?;
            }
            ok(out)?;
        }
        ServersCommand::Sync {
            file,
            mode,
            dry_run,
        } => {
            let text = read_input(&file)?;
            let actions = super::sync::sync(app, &text, mode, dry_run, Display::Auto).await?;
            for a in &actions {
                writeln!(out, "{}{a}", if dry_run { "would " } else { "" }).map_err(io)?;
            }
            if actions.is_empty() {
                writeln!(out, "nothing to change").map_err(io)?;
            }
            ok(out)?;
        }
        ServersCommand::Yaml { verbose } => {
            let list = app.store.servers().await?;
            write!(out, "{}", super::sync::to_yaml(&list, verbose)).map_err(io)?;
        }
        ServersCommand::AddAll { file } => {
            for s in super::sync::add_all(app, &read_input(&file)?).await? {
                writeln!(out, "server: {}", s.url).map_err(io)?;
                writeln!(out, "id: {}", s.id).map_err(io)?;
            }
            ok(out)?;
        }
        ServersCommand::LoadMultiplier { id, multiplier } => {
            servers::update(app, &id, None, Some(multiplier), None).await?;
            ok(out)?;
        }
        ServersCommand::MeetingList { ids } => {
            for (s, running) in meetings::running_on(app, &split_ids(&ids)).await? {
                writeln!(out, "Server ID: {}", s.id).map_err(io)?;
                writeln!(out, "Server Url: {}", s.url).map_err(io)?;
                match running {
                    Some(names) => writeln!(out, "MeetingIDs: {}", names.join(", ")).map_err(io)?,
                    None => writeln!(out, "MeetingIDs: (the server did not answer)").map_err(io)?,
                }
            }
        }
    }
    Ok(())
}

async fn tenants_command(app: &App, cmd: TenantsCommand, out: &mut impl Write) -> AdminResult<()> {
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    match cmd {
        TenantsCommand::List { show_secrets, json } => {
            let list = tenants::list(app).await?;
            if json {
                let mut views = Vec::new();
                for t in &list {
                    let lrs = app.store.tenant_lrs(&t.id).await?;
                    views.push(views::TenantView::new(t, lrs.as_ref(), show_secrets));
                }
                views::write_json(out, &views).map_err(io)?;
                return Ok(());
            }
            let total = list.len();
            for t in list {
                writeln!(out, "id: {}", t.id).map_err(io)?;
                writeln!(out, "\tname: {}", t.name).map_err(io)?;
                if show_secrets {
                    writeln!(out, "\tsecrets: {}", t.secrets.join(":")).map_err(io)?;
                }
                let limit = |l: Option<u32>| l.map(|n| n.to_string()).unwrap_or("none".into());
                writeln!(out, "\tmax meetings: {}", limit(t.max_meetings)).map_err(io)?;
                writeln!(out, "\tmax participants: {}", limit(t.max_participants)).map_err(io)?;
                if let Some(l) = app.store.tenant_lrs(&t.id).await? {
                    let how = if l.username.is_some() {
                        "basic"
                    } else {
                        "keycloak token"
                    };
                    writeln!(out, "\tlrs: {} ({how})", l.endpoint).map_err(io)?;
                }
            }
            // Scalelite's last line, also for an empty list.
            writeln!(out, "Total number of tenants: {total}").map_err(io)?;
        }
        TenantsCommand::UpdateLrsBasic {
            id,
            lrs_endpoint,
            lrs_username,
            lrs_password,
        } => {
            let lrs = crate::store::TenantLrs {
                endpoint: lrs_endpoint,
                username: Some(lrs_username),
                password: Some(lrs_password),
                ..Default::default()
            };
            tenants::set_lrs(app, &id, Some(lrs)).await?;
            writeln!(out, "OK").map_err(io)?;
        }
        TenantsCommand::UpdateLrsKc {
            id,
            lrs_endpoint,
            kc_token_url,
            kc_client_id,
            kc_client_secret,
            kc_username,
            kc_password,
        } => {
            let lrs = crate::store::TenantLrs {
                endpoint: lrs_endpoint,
                kc_token_url: Some(kc_token_url),
                kc_client_id: Some(kc_client_id),
                kc_client_secret: Some(kc_client_secret),
                kc_username: Some(kc_username),
                kc_password: Some(kc_password),
                ..Default::default()
            };
            tenants::set_lrs(app, &id, Some(lrs)).await?;
            writeln!(out, "OK").map_err(io)?;
        }
        TenantsCommand::RemoveLrs { id } => {
            tenants::set_lrs(app, &id, None).await?;
            writeln!(out, "OK").map_err(io)?;
        }
        TenantsCommand::Add { name, secrets } => {
            let t = tenants::add(app, &name, &secrets).await?;
            writeln!(out, "OK").map_err(io)?;
            writeln!(out, "id: {}", t.id).map_err(io)?;
        }
        TenantsCommand::Update {
            id,
            name,
            secrets,
            max_meetings,
            max_participants,
        } => {
            let changes = tenants::TenantChanges {
                name,
                secrets,
                max_meetings,
                max_participants,
            };
            if changes.is_empty() {
                return Err(AdminError::Invalid(
                    "nothing to update; give --name, --secrets, --max-meetings or --max-participants".into(),
                ));
            }
            tenants::update(app, &id, changes).await?;
            writeln!(out, "OK").map_err(io)?;
        }
        TenantsCommand::Remove { id, force } => {
            tenants::remove(app, &id, force)
                .await
                .map_err(|e| match e {
                    AdminError::Refused(m) => AdminError::Refused(format!("{m} with --force")),
                    e => e,
                })?;
            writeln!(out, "OK").map_err(io)?;
        }
    }
    Ok(())
}

async fn tenant_settings_command(
    app: &App,
    cmd: TenantSettingsCommand,
    out: &mut impl Write,
) -> AdminResult<()> {
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    match cmd {
        TenantSettingsCommand::List { tenant_id } => {
            let list = tenants::settings(app, &tenant_id).await?;
            if list.is_empty() {
                eprintln!("Tenant {tenant_id} has no settings");
            }
            for s in list {
                writeln!(out, "id: {}", s.id).map_err(io)?;
                writeln!(out, "\tparam: {}", s.param).map_err(io)?;
                writeln!(out, "\tvalue: {}", s.value).map_err(io)?;
                writeln!(out, "\toverride: {}", s.is_override).map_err(io)?;
            }
        }
        TenantSettingsCommand::Add {
            tenant_id,
            param,
            value,
            is_override,
        } => {
            let s = tenants::add_setting(app, &tenant_id, &param, &value, is_override).await?;
            writeln!(out, "OK").map_err(io)?;
            writeln!(out, "id: {}", s.id).map_err(io)?;
        }
        TenantSettingsCommand::Remove { id } => {
            tenants::remove_setting(app, &id).await?;
            writeln!(out, "OK").map_err(io)?;
        }
    }
    Ok(())
}

/// The contents of `path`, or of standard input for `-`.
fn read_input(path: &str) -> AdminResult<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| AdminError::Invalid(format!("cannot read standard input: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .map_err(|e| AdminError::Invalid(format!("cannot read {path}: {e}")))
}

/// `status`: the human table and `--json` print the same [`views::StatusRow`]s.
async fn status(app: &App, out: &mut impl Write, json: bool) -> AdminResult<()> {
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    let rows = views::status_rows(&super::status::snapshot(app).await?.servers);
    if json {
        return views::write_json(out, &rows).map_err(io);
    }
    let header = [
        "HOSTNAME",
        "STATE",
        "STATUS",
        "MEETINGS",
        "USERS",
        "LARGEST MEETING",
        "VIDEOS",
        "LOAD",
        "BBB VERSION",
        "TAG",
        "ID",
    ];
    let cells: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            vec![
                r.hostname,
                r.state,
                if r.online { "online" } else { "offline" }.to_string(),
                r.meetings.to_string(),
                r.users.to_string(),
                r.largest_meeting.to_string(),
                r.videos.to_string(),
                fmt_load(r.load),
                r.bbb_version,
                r.tag.unwrap_or_else(|| "-".into()),
                r.id,
            ]
        })
        .collect();
    views::write_table(out, &header, &cells).map_err(io)
}

fn confirm(question: &str) -> bool {
    eprint!("{question} Type 'yes' to continue: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == "yes"
}

async fn meetings_command(
    app: &App,
    cmd: MeetingsCommand,
    out: &mut impl Write,
) -> AdminResult<()> {
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    match cmd {
        MeetingsCommand::List { ids, json } => {
            let servers = app.store.servers().await?;
            let list = meetings::list(app, &split_ids(&ids)).await?;
            if json {
                let views: Vec<_> = list
                    .iter()
                    .map(|m| views::MeetingView::new(m, &servers))
                    .collect();
                views::write_json(out, &views).map_err(io)?;
                return Ok(());
            }
            if list.is_empty() {
                eprintln!("No meetings are running");
            }
            for m in list {
                let url = servers
                    .iter()
                    .find(|s| s.id == m.server_id)
                    .map(|s| s.url.as_str())
                    .unwrap_or("(removed)");
                writeln!(out, "MeetingID: {}", m.meeting_id).map_err(io)?;
                if let Some(tenant) = TenantScope::from_stored(&m.tenant_id).id() {
                    writeln!(out, "\tTenant ID: {tenant}").map_err(io)?;
                }
                writeln!(out, "\tServer ID: {}", m.server_id).map_err(io)?;
                writeln!(out, "\tServer Url: {url}").map_err(io)?;
                writeln!(out, "\tVoice bridge: {}", m.voice_bridge).map_err(io)?;
            }
        }
        MeetingsCommand::End { ids, yes } => {
            let list = meetings::list(app, &split_ids(&ids)).await?;
            if list.is_empty() {
                writeln!(out, "No meetings are running; nothing to end").map_err(io)?;
                return Ok(());
            }
            if ids.is_empty()
                && !yes
                && !confirm(&format!("This ends all {} meetings.", list.len()))
            {
                return Err(AdminError::Refused(
                    "nothing ended; pass --yes to end every meeting without asking".into(),
                ));
            }
            for m in list {
                if let Some(warning) = meetings::end(app, &m).await? {
                    eprintln!("warning: {warning}");
                }
                writeln!(out, "Ended {}", m.meeting_id).map_err(io)?;
            }
            writeln!(out, "OK").map_err(io)?;
        }
        MeetingsCommand::Info { id } => {
            let info = meetings::info(app, &id).await?;
            let (m, server, field) = (&info.meeting, &info.server, |n| info.field(n));
            writeln!(out, "Meeting ID: {}", m.meeting_id).map_err(io)?;
            writeln!(out, "\tMeeting Name: {}", field("meetingName")).map_err(io)?;
            writeln!(out, "\tInternal MeetingID: {}", field("internalMeetingID")).map_err(io)?;
            writeln!(out, "\tCreated Date: {}", field("createDate")).map_err(io)?;
            writeln!(out, "\tRecording Enabled: {}", field("recording")).map_err(io)?;
            writeln!(out, "\tParticipants: {}", field("participantCount")).map_err(io)?;
            writeln!(out, "\tVoice bridge: {}", m.voice_bridge).map_err(io)?;
            writeln!(out, "\tServer ID: {}", server.id).map_err(io)?;
            writeln!(out, "\tServer Url: {}", server.url).map_err(io)?;
        }
    }
    Ok(())
}

fn print_recordings(
    out: &mut impl Write,
    list: &[crate::store::recordings::Recording],
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(views::RecordingView::new)
        .map(|r| {
            vec![
                r.record_id,
                r.meeting_id,
                r.state.unwrap_or_else(|| "-".into()),
                if r.published { "yes" } else { "no" }.to_string(),
                views::fmt_time(r.start_time),
                if r.formats.is_empty() {
                    "-".to_string()
                } else {
                    r.formats.join(",")
                },
            ]
        })
        .collect();
    views::write_table(
        out,
        &[
            "RECORD ID",
            "MEETING ID",
            "STATE",
            "PUBLISHED",
            "STARTED",
            "FORMATS",
        ],
        &rows,
    )
}

/// `recordings import --json`.
#[derive(serde::Serialize)]
struct ImportJson<'a> {
    summary: &'a super::progress::Summary,
    imported: &'a [String],
    problems: &'a [String],
}

async fn recordings_command(
    app: &App,
    cmd: RecordingsCommand,
    out: &mut impl Write,
) -> AdminResult<Outcome> {
    use super::recordings as rec;
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    match cmd {
        RecordingsCommand::Import {
            path,
            quiet,
            wait,
            json,
            dry_run,
        } => {
            let lock_path = super::lock::lock_path(&app.config.database_path);
            let Some(_lock) = super::lock::acquire(&lock_path, wait)? else {
                if !quiet {
                    eprintln!(
                        "another import is running (it holds {}); nothing done. Add --wait to wait for it",
                        lock_path.display()
                    );
                }
                return Ok(Outcome::Busy);
            };
            let display = Display::quiet_if(quiet || json);
            let result = rec::import(app, &path, dry_run, display).await?;
            let s = &result.summary;
            if json {
                let doc = ImportJson {
                    summary: s,
                    imported: &result.imported,
                    problems: &result.problems,
                };
                views::write_json(out, &doc).map_err(io)?;
            } else if !quiet {
                for line in &result.imported {
                    writeln!(out, "{line}").map_err(io)?;
                }
                writeln!(out, "{}", s.line()).map_err(io)?;
            } else if s.outcome() != Outcome::Ok {
                eprintln!("{}", s.line());
            }
            if s.outcome() == Outcome::Failed {
                return Err(AdminError::Invalid(format!(
                    "nothing could be imported from {}",
                    path.display()
                )));
            }
            return Ok(s.outcome());
        }
        RecordingsCommand::List { meeting, json } => {
            let list = rec::list(app, meeting.as_deref()).await?;
            if json {
                let views: Vec<_> = list.iter().map(views::RecordingView::new).collect();
                views::write_json(out, &views).map_err(io)?;
            } else if list.is_empty() {
                eprintln!("No recordings");
            } else {
                print_recordings(out, &list).map_err(io)?;
            }
        }
        RecordingsCommand::Publish { id } => {
            rec::publish(app, &id, true).await?;
            writeln!(out, "published {id}").map_err(io)?;
        }
        RecordingsCommand::Unpublish { id } => {
            rec::publish(app, &id, false).await?;
            writeln!(out, "unpublished {id}").map_err(io)?;
        }
        RecordingsCommand::Delete { id } => {
            rec::delete(app, &id).await?;
            writeln!(out, "deleted {id}").map_err(io)?;
        }
        RecordingsCommand::Prune {
            older_than,
            dry_run,
        } => {
            let list = rec::prune(app, older_than, dry_run).await?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for r in &list {
                writeln!(out, "{verb} {}", r.record_id).map_err(io)?;
            }
            writeln!(out, "{} recording(s) {verb}", list.len()).map_err(io)?;
        }
    }
    Ok(Outcome::Ok)
}
