//! `fake-bbb`: run simulated BigBlueButton servers (see `ferrolite::fake`).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "fake-bbb",
    about = "Simulated BigBlueButton servers for tests, demos and benchmarks"
)]
struct Args {
    /// How many servers to run.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// One secret for every server.
    #[arg(long, default_value = "fake-bbb-secret")]
    secret: String,
    /// A secret per server, comma-separated (overrides --servers and --secret).
    #[arg(long, value_delimiter = ',')]
    secrets: Vec<String>,
    /// First port of the servers (0: any free port each).
    #[arg(long, default_value_t = 0)]
    port_base: u16,
    /// Port of the control API (0: any free port).
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    /// Meetings to create on every server at start (an hour old).
    #[arg(long, default_value_t = 0)]
    seed_meetings: usize,
    /// Participants in each seeded meeting.
    #[arg(long, default_value_t = 10)]
    seed_users: u32,
    /// What the servers report as bbbVersion.
    #[arg(long, default_value = "3.0.0-fake")]
    bbb_version: String,
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let secrets = if a.secrets.is_empty() {
        vec![a.secret.clone(); a.servers]
    } else {
        a.secrets
    };
    let cfg = ferrolite::fake::FakeConfig {
        secrets,
        port_base: a.port_base,
        control_port: a.control_port,
        seed_meetings: a.seed_meetings,
        seed_users: a.seed_users,
        version: a.bbb_version,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(ferrolite::fake::run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-bbb: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
