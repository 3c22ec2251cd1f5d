//! The committed man pages and completions match the tools' clap definitions.

#[test]
fn committed_docs_match_the_clap_definitions() {
    let files = xtask::render_all().expect("render");
    let drift = xtask::check(&xtask::workspace_root(), &files).expect("read the committed files");
    assert!(
        drift.is_clean(),
        "man/ and completions/ are out of date (outdated: {:?}, stale: {:?}); \
         fix with `cargo run -p xtask -- gen-docs` and commit the result",
        drift.outdated,
        drift.stale
    );
}

#[test]
fn every_tool_has_a_man_page_and_three_completions() {
    let files = xtask::render_all().expect("render");
    for tool in xtask::TOOLS {
        let has = |p: &str| files.iter().any(|f| f.path == std::path::Path::new(p));
        assert!(has(&format!("man/{}.1", tool.name)), "{}", tool.name);
        assert!(has(&format!("completions/{}.bash", tool.name)));
        assert!(has(&format!("completions/_{}", tool.name)));
        assert!(has(&format!("completions/{}.fish", tool.name)));
    }
    let man = files
        .iter()
        .find(|f| f.path == std::path::Path::new("man/hyperdht.1"))
        .expect("hyperdht man page");
    let text = String::from_utf8_lossy(&man.contents);
    assert!(text.contains("testnet"), "the man page documents --testnet");
    assert!(text.contains("HYPERDHT_BOOTSTRAP"));
}

#[test]
fn bash_completions_parse() {
    let root = xtask::workspace_root();
    for tool in xtask::TOOLS {
        let path = root.join(format!("completions/{}.bash", tool.name));
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .expect("bash is installed");
        assert!(status.success(), "bash -n {}", path.display());
    }
}

mod systemd_units;
