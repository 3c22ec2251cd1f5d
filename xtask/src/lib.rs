//! Generates `man/` (clap_mangen) and `completions/` (clap_complete: bash, zsh, fish) for every tool from
//! its clap definition. Adding a tool is one line in [`TOOLS`] (plus its path dependency in Cargo.toml).

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// A tool whose docs are generated: its binary name and its clap definition.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The binary's name (also the man page's and the completions' name).
    pub name: &'static str,
    /// Builds the clap command.
    pub command: fn() -> clap::Command,
}

/// Every tool of the workspace.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "hyperdht",
        command: hyperdht_cli::cli::command,
    },
    Tool {
        name: "hyperbeam",
        command: hyperbeam_cli::cli::command,
    },
    Tool {
        name: "hypertele",
        command: hypertele_tool::cli::client_command,
    },
    Tool {
        name: "hypertele-server",
        command: hypertele_tool::cli::server_command,
    },
    Tool {
        name: "hyperssh",
        command: hyperssh_cli::cli::command,
    },
    Tool {
        name: "hyperssh-fuse",
        command: hyperssh_cli::cli::fuse_command,
    },
    Tool {
        name: "hypershell",
        command: hypershell_cli::cli::client_command,
    },
    Tool {
        name: "hypershell-server",
        command: hypershell_cli::cli::server_command,
    },
    Tool {
        name: "hypershell-keygen",
        command: hypershell_cli::cli::keygen_command,
    },
    Tool {
        name: "hypershell-copy",
        command: hypershell_cli::cli::copy_command,
    },
    Tool {
        name: "drives",
        command: drives_cli::cli::command,
    },
    Tool {
        name: "autobase-kv",
        command: autobase_kv_cli::cli::command,
    },
];

/// The folders the generated files live in, relative to the workspace root.
pub const DIRS: [&str; 2] = ["man", "completions"];

/// The shells completions are generated for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// One generated file: its path relative to the workspace root and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Path relative to the workspace root.
    pub path: PathBuf,
    /// The file's contents.
    pub contents: Vec<u8>,
}

/// The workspace root (the parent of this package).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

fn completion_file(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Bash => format!("{name}.bash"),
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        Shell::Elvish => format!("{name}.elv"),
        Shell::PowerShell => format!("_{name}.ps1"),
        _ => format!("{name}.{shell}"),
    }
}

/// Renders the man page of `cmd` as `man/<page>.1`, and of each subcommand as `man/<page>-<sub>.1`.
fn render_man(cmd: clap::Command, page: &str, out: &mut Vec<Generated>) -> io::Result<()> {
    let mut contents = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(page.to_owned())
        .render(&mut contents)?;
    out.push(Generated {
        path: Path::new("man").join(format!("{page}.1")),
        contents,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_page = format!("{page}-{}", sub.get_name());
        render_man(sub.clone(), &sub_page, out)?;
    }
    Ok(())
}

/// Renders every tool's man pages and completions, in a stable order.
pub fn render_all() -> io::Result<Vec<Generated>> {
    let mut out = Vec::new();
    for tool in TOOLS {
        let mut cmd = (tool.command)().name(tool.name);
        cmd.build();
        render_man(cmd.clone(), tool.name, &mut out)?;
        for shell in SHELLS {
            let mut contents = Vec::new();
            clap_complete::generate(shell, &mut cmd, tool.name, &mut contents);
            out.push(Generated {
                path: Path::new("completions").join(completion_file(shell, tool.name)),
                contents,
            });
        }
    }
    Ok(out)
}

/// Writes the generated files under `root`, and removes files in [`DIRS`] that are no longer generated.
pub fn write_all(root: &Path) -> io::Result<Vec<Generated>> {
    let files = render_all()?;
    for dir in DIRS {
        std::fs::create_dir_all(root.join(dir))?;
    }
    for stale in check(root, &files)?.stale {
        std::fs::remove_file(root.join(stale))?;
    }
    for f in &files {
        std::fs::write(root.join(&f.path), &f.contents)?;
    }
    Ok(files)
}

/// How the committed files differ from the generated ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Generated files that are missing or differ on disk.
    pub outdated: Vec<PathBuf>,
    /// Files in [`DIRS`] that nothing generates any more.
    pub stale: Vec<PathBuf>,
}

impl Drift {
    /// Whether the files on disk are up to date.
    pub fn is_clean(&self) -> bool {
        self.outdated.is_empty() && self.stale.is_empty()
    }
}

/// Compares `files` with what is under `root`.
pub fn check(root: &Path, files: &[Generated]) -> io::Result<Drift> {
    let mut drift = Drift::default();
    for f in files {
        match std::fs::read(root.join(&f.path)) {
            Ok(on_disk) if on_disk == f.contents => {}
            Ok(_) => drift.outdated.push(f.path.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => drift.outdated.push(f.path.clone()),
            Err(e) => return Err(e),
        }
    }
    for dir in DIRS {
        let entries = match std::fs::read_dir(root.join(dir)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = Path::new(dir).join(entry?.file_name());
            if !files.iter().any(|f| f.path == path) {
                drift.stale.push(path);
            }
        }
    }
    drift.outdated.sort();
    drift.stale.sort();
    Ok(drift)
}
