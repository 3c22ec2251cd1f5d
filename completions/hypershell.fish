complete -c hypershell -s f -d 'Filename of the client seed key' -r -F
complete -c hypershell -s L -d 'Local port forwarding: [address:]port:host:hostport (repeatable)' -r
complete -c hypershell -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c hypershell -l bootstrap -d 'Bootstrap nodes of the DHT to use (default: HYPERDHT_BOOTSTRAP, else the public nodes)' -r
complete -c hypershell -l testnet -d 'Use a local testnet (bootstrap 127.0.0.1:40838)'
complete -c hypershell -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c hypershell -s h -l help -d 'Print help'
complete -c hypershell -s V -l version -d 'Print version'
