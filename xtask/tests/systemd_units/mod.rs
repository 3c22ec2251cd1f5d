//! The user units of `contrib/systemd/`: each starts a tool of this workspace from `~/.cargo/bin` with
//! arguments its clap definition accepts, restarts on failure, keeps its state in the user's home and is
//! enabled into the user's `default.target`; and, where systemd is installed, `systemd-analyze verify` finds
//! nothing wrong with them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The units, and the instance their comments enable for a template unit.
const UNITS: &[(&str, Option<&str>)] = &[
    ("drives-seed.service", None),
    ("hypertele-server@.service", Some("22")),
    ("hypershell-server.service", None),
    ("hyperdht@.service", Some("49737")),
];

const HOME: &str = "/home/someone";

fn units_dir() -> PathBuf {
    xtask::workspace_root().join("contrib/systemd")
}

/// `section -> [(key, value)]`, in file order (comments and blank lines skipped).
fn parse(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key=value line: {line:?}"));
        assert!(!section.is_empty(), "a key outside a section: {line:?}");
        out.entry(section.clone())
            .or_default()
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    out
}

fn values<'a>(
    unit: &'a BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    unit.get(section)
        .map(|kv| {
            kv.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unit_files_start_workspace_tools_with_flags_their_clap_accepts() {
    let mut listed: Vec<String> = std::fs::read_dir(units_dir())
        .expect("contrib/systemd")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service"))
        .collect();
    listed.sort();
    let mut expected: Vec<String> = UNITS.iter().map(|(n, _)| (*n).to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "the units of contrib/systemd");
    for (name, instance) in UNITS {
        let text = std::fs::read_to_string(units_dir().join(name)).expect("read unit");
        let unit = parse(&text);
        assert_eq!(name.contains("@."), instance.is_some(), "{name}: template");
        let exec = values(&unit, "Service", "ExecStart");
        assert_eq!(exec.len(), 1, "{name}: one ExecStart");
        let line = exec[0]
            .replace("%h", HOME)
            .replace("%i", instance.unwrap_or("%i"));
        assert!(!line.contains('%'), "{name}: unknown specifier in {line:?}");
        assert!(
            !line.contains(['"', '\'', '\\', ';', '$']),
            "{name}: plain words only"
        );
        let argv: Vec<&str> = line.split_whitespace().collect();
        let bin = argv[0]
            .strip_prefix(&format!("{HOME}/.cargo/bin/"))
            .unwrap_or_else(|| panic!("{name}: not a tool in ~/.cargo/bin: {}", argv[0]));
        let tool = xtask::TOOLS
            .iter()
            .find(|t| t.name == bin)
            .unwrap_or_else(|| panic!("{name}: {bin} is no binary of this workspace"));
        let mut args = vec![bin];
        args.extend(&argv[1..]);
        if let Err(e) = (tool.command)().try_get_matches_from(&args) {
            panic!("{name}: {bin} refuses {args:?}: {e}");
        }
        // State in the user's home: every path named is under it.
        for a in &argv[1..] {
            assert!(
                !a.starts_with('/') || a.starts_with(HOME),
                "{name}: {a} is outside the home"
            );
        }
        for (section, key, want) in [
            ("Service", "Restart", "on-failure"),
            ("Service", "RestartPreventExitStatus", "2"),
            ("Install", "WantedBy", "default.target"),
        ] {
            assert_eq!(values(&unit, section, key), [want], "{name}: {key}");
        }
        // A user unit: no account switch, nothing that needs root.
        for key in ["User", "Group", "DynamicUser"] {
            assert!(values(&unit, "Service", key).is_empty(), "{name}: {key}=");
        }
    }
    let drives =
        parse(&std::fs::read_to_string(units_dir().join("drives-seed.service")).expect("read"));
    assert!(values(&drives, "Service", "ExecStart")[0].contains(" seed --all"));
    // Where systemd is installed (CI, and most machines the units are for), systemd's own check too.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        systemd_analyze_verify();
    }
}

/// `systemd-analyze verify` on the units (templates instantiated as their comments enable them), with a
/// home whose `~/.cargo/bin` holds the tools (stand-ins: it checks that they are executables).
fn systemd_analyze_verify() {
    let root = testkit::scratch_dir("systemd-units");
    let home = root.join("home");
    let bin = home.join(".cargo/bin");
    let units = root.join("units");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::create_dir_all(&units).expect("mkdir");
    let exe = std::env::current_exe().expect("exe");
    let mut files = Vec::new();
    for (name, instance) in UNITS {
        let text = std::fs::read_to_string(units_dir().join(name)).expect("read unit");
        let tool = values(&parse(&text), "Service", "ExecStart")[0]
            .split_whitespace()
            .next()
            .and_then(|p| Path::new(p).file_name())
            .expect("tool")
            .to_string_lossy()
            .into_owned();
        let link = bin.join(&tool);
        if !link.exists() {
            std::os::unix::fs::symlink(&exe, &link).expect("symlink");
        }
        let file = match instance {
            Some(i) => name.replace("@.", &format!("@{i}.")),
            None => (*name).to_string(),
        };
        std::fs::write(units.join(&file), text).expect("write");
        files.push(file);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .current_dir(&units)
        .env("HOME", &home)
        .output()
        .expect("systemd-analyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stdout}\n{stderr}",
        out.status
    );
}
