//! `cargo run -p xtask -- gen-docs [--check]`: writes (or checks) `man/` and `completions/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project chores.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Generate the man pages (man/) and shell completions (completions/) of every tool.
    GenDocs {
        /// Only check that the committed files are up to date (exit 1 if not).
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let Args {
        task: Task::GenDocs { check },
    } = Args::parse();
    let root = xtask::workspace_root();
    let result = if check {
        xtask::render_all().and_then(|files| xtask::check(&root, &files))
    } else {
        xtask::write_all(&root).map(|files| {
            for f in &files {
                println!("wrote {}", f.path.display());
            }
            xtask::Drift::default()
        })
    };
    match result {
        Ok(drift) if drift.is_clean() => ExitCode::SUCCESS,
        Ok(drift) => {
            for p in drift.outdated {
                eprintln!("outdated: {}", p.display());
            }
            for p in drift.stale {
                eprintln!("stale: {}", p.display());
            }
            eprintln!("run `cargo run -p xtask -- gen-docs` to regenerate");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
