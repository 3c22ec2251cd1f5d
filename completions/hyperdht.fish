# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_hyperdht_global_optspecs
    string join \n bootstrap= nodes= port= host= testnet= relay seed= h/help V/version
end

function __fish_hyperdht_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_hyperdht_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_hyperdht_using_subcommand
    set -l cmd (__fish_hyperdht_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c hyperdht -n "__fish_hyperdht_needs_command" -l bootstrap -d 'Without a value (or followed by another flag): run a bootstrap node at --host/--port. With a list: join the network of those bootstrap nodes' -r
complete -c hyperdht -n "__fish_hyperdht_needs_command" -l nodes -d 'How many DHT nodes to run' -r
complete -c hyperdht -n "__fish_hyperdht_needs_command" -l port -d 'UDP port to bind (default: any free port for nodes, 49737 for a bootstrap node; the first node\'s port with --testnet). Only with a single node' -r
complete -c hyperdht -n "__fish_hyperdht_needs_command" -l host -d 'Address to bind (default 0.0.0.0); for a bootstrap node, its public IPv4 address (required)' -r
complete -c hyperdht -n "__fish_hyperdht_needs_command" -l testnet -d 'Run a local network of N nodes on 127.0.0.1 and print its bootstrap list (HOST:PORT[,HOST:PORT...]) as the first line of stdout' -r
complete -c hyperdht -n "__fish_hyperdht_needs_command" -l seed -d 'The relay\'s key pair seed (64 hex digits), for a stable public key (default: a random key pair)' -r
complete -c hyperdht -n "__fish_hyperdht_needs_command" -l relay -d 'Run a blind relay (blind-relay 1.6.1 on a HyperDHT server) that peers name with relayThrough; prints its public key (hex) as the first line of stdout'
complete -c hyperdht -n "__fish_hyperdht_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hyperdht -n "__fish_hyperdht_needs_command" -s V -l version -d 'Print version'
complete -c hyperdht -n "__fish_hyperdht_needs_command" -f -a "doctor" -d 'Check this machine\'s connectivity to the DHT: UDP reachability, the NAT kind as the DHT sees it, the public address and port mapping, the latency to each bootstrap node, IPv6, and a relay'
complete -c hyperdht -n "__fish_hyperdht_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hyperdht -n "__fish_hyperdht_using_subcommand doctor" -l bootstrap -d 'Bootstrap nodes of the DHT to use' -r
complete -c hyperdht -n "__fish_hyperdht_using_subcommand doctor" -l relay -d 'Also check that this blind relay (its public key, hex or z-base32) answers: connect to it through the DHT' -r
complete -c hyperdht -n "__fish_hyperdht_using_subcommand doctor" -l timeout -d 'How long to wait for the DHT and the relay, in seconds' -r
complete -c hyperdht -n "__fish_hyperdht_using_subcommand doctor" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c hyperdht -n "__fish_hyperdht_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hyperdht -n "__fish_hyperdht_using_subcommand help; and not __fish_seen_subcommand_from doctor help" -f -a "doctor" -d 'Check this machine\'s connectivity to the DHT: UDP reachability, the NAT kind as the DHT sees it, the public address and port mapping, the latency to each bootstrap node, IPv6, and a relay'
complete -c hyperdht -n "__fish_hyperdht_using_subcommand help; and not __fish_seen_subcommand_from doctor help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
