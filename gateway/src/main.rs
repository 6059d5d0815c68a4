//! `gateway`: run a node (`--config FILE`), validate a config (`check-config FILE`), or
//! try it out (`demo`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Many short-lived allocations per proxied request: mimalloc's thread-local free lists
// beat glibc malloc under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gateway::config::Config;
use gateway::{demo, server, telemetry};

/// Exit code for an invalid configuration.
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(name = "gateway", version, about = "Distributed API gateway node")]
struct Cli {
    /// Config file (TOML). Without one, the node starts in memory mode with defaults.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and exit (0 valid, 2 invalid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Run one node in memory mode with a built-in echo upstream and sample services.
    Demo {
        /// Proxy listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin_listen: std::net::SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => match Config::load(&file) {
            Ok(c) => {
                println!("{}: ok ({} services, {} mode)", file.display(), c.services.len(), mode(&c));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid config: {e}", file.display());
                ExitCode::from(EXIT_BAD_CONFIG)
            }
        },
        Some(Command::Demo { listen, admin_listen }) => run(demo::prepare(listen, admin_listen)),
        None => {
            let loaded = match &cli.config {
                Some(path) => Config::load(path).map_err(|e| format!("{}: invalid config: {e}", path.display())),
                None => Config::from_toml("", std::env::vars()).map_err(|e| format!("invalid config: {e}")),
            };
            match loaded {
                Ok(c) => run(Ok(demo::Prepared::plain(c))),
                Err(msg) => {
                    eprintln!("{msg}");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            }
        }
    }
}

fn mode(c: &Config) -> &'static str {
    if c.redis.is_some() { "redis" } else { "memory" }
}

fn run(prepared: Result<demo::Prepared, String>) -> ExitCode {
    let prepared = match prepared {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let _log_guard = telemetry::init_logging(&prepared.config.log);
    let result = actix_rt::System::new().block_on(async move {
        let demo = prepared.start_demo().await?;
        let banner = prepared.banner();
        let on_ready = move || {
            if let Some(b) = banner {
                use std::io::Write;
                // A closed stdout must not take the node down.
                let _ = writeln!(std::io::stdout().lock(), "{b}");
            }
        };
        server::run(prepared.config, on_ready).await.map_err(|e| e.to_string())?;
        drop(demo);
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gateway failed");
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
