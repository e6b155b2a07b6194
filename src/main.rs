use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a what-if scenario against the routing engine in virtual time.
    Simulate(omniroute::sim::cli::SimulateArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Some(Command::Simulate(args)) => omniroute::sim::cli::run(&args),
        None => {
            println!("omniroute {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
