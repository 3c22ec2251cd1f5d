complete -c hyperssh -s s -d 'The server: its public key or a .hyper-hosts name' -r
complete -c hyperssh -s u -d 'The user to log in as (default: the current user)' -r
complete -c hyperssh -s i -d 'Identity file: the key pair this client connects to the server with (random without it)' -r -F
complete -c hyperssh -s e -d 'Command to run on the server instead of a login shell' -r
complete -c hyperssh -l bootstrap -d 'Bootstrap nodes of the DHT to use' -r
complete -c hyperssh -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c hyperssh -l rdp -d 'Do not run ssh: listen on 127.0.0.1:3389 for an RDP client instead'
complete -c hyperssh -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c hyperssh -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hyperssh -s V -l version -d 'Print version'
