use std::process::ExitCode;

use clap::Parser;
use sft_eval::cli::Cli;
use sft_eval::error::ExitStatus;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match sft_eval::cli::run(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {err}");
                if let Some(h) = err.hint() {
                    eprintln!("hint: {h}");
                }
            }
            ExitStatus::Error.into()
        }
    }
}
