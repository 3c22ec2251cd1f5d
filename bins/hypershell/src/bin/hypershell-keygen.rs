//! `hypershell-keygen`: creates a seed key file. See `hypershell-keygen --help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bin_support::Report;
use clap::Parser;
use hypershell_cli::cli::KeygenCli;
use hypershell_cli::keys;

/// Errors: `Error: <message>`.
const REPORT: Report = Report::new("Error: ");

fn main() -> ExitCode {
    let cli = KeygenCli::parse();
    println!("Generating key.");
    let path = match cli.keyfile {
        Some(p) => p,
        None => {
            let default = keys::default_keyfile();
            print!(
                "Enter file in which to save the key ({}): ",
                default.display()
            );
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().read_line(&mut answer);
            let answer = answer.trim();
            if answer.is_empty() {
                default
            } else {
                PathBuf::from(answer)
            }
        }
    };
    match keys::generate(&path, cli.comment.as_deref()) {
        Ok(kp) => {
            println!("Your key has been saved in {}", path.display());
            println!("The public key is:");
            println!("{}", holepunch::hypershell::format_key(&kp.public));
            ExitCode::SUCCESS
        }
        Err(e) => REPORT.fail(&e),
    }
}
