use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = burn_peft_cli::Cli::parse();
    match burn_peft_cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[path = "cli/mod.rs"]
mod burn_peft_cli;
