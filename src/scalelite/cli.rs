//! `ferrolite scalelite …`: the command line of the Scalelite import.

use clap::Subcommand;

use super::plan::{self, Options};
use super::{postgres, redis, write};
use crate::admin::{AdminError, AdminResult};
use crate::app::App;

#[derive(Subcommand, Debug)]
pub enum ScaleliteCommand {
    /// Carry a Scalelite's servers, tenants, tenant settings, running meetings (Redis) and
    /// recordings index with callback data (PostgreSQL) over to this Ferrolite. Reads only;
    /// running it again changes nothing.
    Import {
        /// Scalelite's REDIS_URL, e.g. redis://127.0.0.1:6379/0
        #[arg(long)]
        redis_url: String,
        /// Scalelite's REDIS_NAMESPACE.
        #[arg(long, default_value = "scalelite")]
        redis_namespace: String,
        /// Scalelite's DATABASE_URL, e.g. postgres://scalelite:…@127.0.0.1/scalelite
        #[arg(long)]
        database_url: String,
        /// Print what would be carried over, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(app: &App, cmd: ScaleliteCommand) -> AdminResult<()> {
    let ScaleliteCommand::Import {
        redis_url,
        redis_namespace,
        database_url,
        dry_run,
    } = cmd;
    let fail = |e: super::ImportError| AdminError::Invalid(e.to_string());
    println!("reading Scalelite's Redis (namespace {redis_namespace:?})");
    let rs = redis::read(&redis_url, &redis_namespace)
        .await
        .map_err(fail)?;
    println!(
        "  {} servers, {} tenants, {} tenant settings, {} running meetings",
        rs.servers.len(),
        rs.tenants.len(),
        rs.settings.len(),
        rs.meetings.len()
    );
    println!("reading Scalelite's PostgreSQL");
    let pg = postgres::read(&database_url).await.map_err(fail)?;
    println!(
        "  {} recordings, {} callback data rows",
        pg.recordings.len(),
        pg.callback_data.len()
    );
    let ids: Vec<String> = pg
        .recordings
        .iter()
        .filter_map(|r| r.record_id.clone())
        .collect();
    let opts = Options {
        multitenancy: app.config.tenancy.enabled,
    };
    let mut ex = write::existing(app, &ids).await.map_err(fail)?;
    let first = plan::plan(&rs, &pg, &ex, opts);
    write::existing_ready_urls(app, &first.ready_urls, &mut ex)
        .await
        .map_err(fail)?;
    let mut p = plan::plan(&rs, &pg, &ex, opts);
    if !dry_run {
        write::apply(app, &mut p).await.map_err(fail)?;
    }
    print!("{}", p.render(dry_run));
    Ok(())
}
