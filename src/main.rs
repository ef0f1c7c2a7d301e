//! The `berth` command: `serve`, `token` and `migrate`.

use berth::config::Settings;
use berth::{serve, telemetry};
use berth_storage::units::parse_duration;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Actor-based mount orchestration service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (HTTP API, actors, mounts).
    Serve {
        /// A TOML file overriding config/default.toml (BERTH_* variables override both).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print an API token (JWT, HS256) signed with the configured secret.
    Token {
        /// The tenant (`org` claim).
        #[arg(long)]
        org: String,
        /// Space-separated scopes: `read`, `write`.
        #[arg(long, default_value = "read write")]
        scope: String,
        /// Lifetime, e.g. `24h`, `30m`, `7d`.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// A TOML file overriding config/default.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        /// A TOML file overriding config/default.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { config } => {
            let settings = Settings::load(config.as_deref())?;
            let _telemetry = telemetry::init(&settings.log, settings.otlp_endpoint.as_deref())?;
            let data_runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_name("berth-vfs")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the data runtime: {e}"))?;
            let served = actix_web::rt::System::new()
                .block_on(serve::serve(settings, data_runtime.handle().clone()));
            data_runtime.shutdown_timeout(std::time::Duration::from_secs(10));
            served
        }
        Command::Token {
            org,
            scope,
            ttl,
            config,
        } => {
            if org.trim().is_empty() {
                return Err("--org must not be empty".into());
            }
            let ttl = parse_duration(&ttl).map_err(|e| format!("--ttl: {e}"))?;
            let settings = Settings::load(config.as_deref())?;
            println!("{}", serve::jwt_key(&settings)?.mint(&org, &scope, ttl));
            Ok(())
        }
        Command::Migrate { config } => {
            let settings = Settings::load(config.as_deref())?;
            serve::open_db(&settings)?;
            println!("database is up to date");
            Ok(())
        }
    }
}

/// Tunes glibc's allocator for berth's two kinds of large allocations.
///
/// fuser's 16 MiB request buffer per session thread stays fresh zero pages
/// from mmap: with glibc's dynamic threshold it would come from the heap
/// after the first free, be zeroed by hand, and stay resident, costing every
/// idle mount tens of MiB. The data path's pieces (1 MiB reads and writes)
/// stay below the threshold, and up to [`TRIM_THRESHOLD`] of freed memory
/// at the top of a heap is kept instead of given back, so pieces reuse the
/// same memory: from fresh pages, each piece cost page faults, zeroing and
/// an unmap (a fifth of a streamed write's CPU time and a third of a cold
/// read's time, measured with `perf`; docs/BENCHMARKS.md).
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator tuning; called before threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Allocations from this size up come from mmap (see [`tune_allocator`]).
const MMAP_THRESHOLD: libc::c_int = 2 << 20;
/// Freed memory a heap keeps at its top (see [`tune_allocator`]).
const TRIM_THRESHOLD: libc::c_int = 8 << 20;

fn main() -> ExitCode {
    tune_allocator();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("berth: {err}");
            ExitCode::FAILURE
        }
    }
}
