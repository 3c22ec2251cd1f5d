//! `--bootstrap` and `HYPERDHT_BOOTSTRAP` read from the process environment, as the tools read them. The only
//! test of this binary: it sets the variable, and no other test thread reads the environment meanwhile.

use bin_support::bootstrap::{default_nodes, BootstrapArgs, BootstrapNode, ENV};
use clap::{CommandFactory, Parser};

#[derive(Debug, Parser)]
#[command(name = "tool")]
struct Tool {
    #[command(flatten)]
    net: BootstrapArgs,
}

fn parse(args: &[&str]) -> BootstrapArgs {
    Tool::try_parse_from(std::iter::once("tool").chain(args.iter().copied()))
        .expect("valid flags")
        .net
}

fn list(nodes: &[BootstrapNode]) -> Vec<String> {
    nodes.iter().map(ToString::to_string).collect()
}

#[test]
fn flag_then_environment_then_public_nodes() {
    let none = parse(&[]);
    let flag = parse(&["--bootstrap", "1"]);

    std::env::remove_var(ENV);
    assert_eq!(none.nodes(), Ok(default_nodes()));

    // A bare port is 127.0.0.1:PORT, in the variable too.
    std::env::set_var(ENV, "7, 10.0.0.1:8");
    let got = none.nodes().expect("valid variable");
    assert_eq!(list(&got), ["127.0.0.1:7", "10.0.0.1:8"]);
    // The flag wins.
    assert_eq!(list(&flag.nodes().expect("flag")), ["127.0.0.1:1"]);

    // A bad value: a usage error naming the variable (exit 2), only when the variable is used.
    std::env::set_var(ENV, "x:y");
    let err = none
        .nodes_or_usage(Tool::command())
        .expect_err("bad variable");
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().starts_with(
            "error: HYPERDHT_BOOTSTRAP: bad port in bootstrap node \"x:y\" (expected HOST:PORT or PORT)\n"
        ),
        "{err}"
    );
    assert_eq!(list(&flag.nodes().expect("flag")), ["127.0.0.1:1"]);

    // Set but empty: an error too, as before.
    std::env::set_var(ENV, "");
    assert!(none.nodes().is_err());
    std::env::remove_var(ENV);
}
