complete -c hypershell-server -s f -d 'Filename of the server seed key' -r -F
complete -c hypershell-server -l firewall -d 'List of allowed public keys' -r -F
complete -c hypershell-server -l protocol -d 'List of allowed protocols (shell, upload, download, tunnel)' -r -f -a "shell\t''
upload\t''
download\t''
tunnel\t''"
complete -c hypershell-server -l tunnel-host -d 'Restrict tunneling to a limited set of hosts' -r
complete -c hypershell-server -l tunnel-port -d 'Restrict tunneling to a limited set of ports (numbers or ranges like 8000-8100)' -r
complete -c hypershell-server -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c hypershell-server -l bootstrap -d 'Bootstrap nodes of the DHT to use (default: HYPERDHT_BOOTSTRAP, else the public nodes)' -r
complete -c hypershell-server -l disable-firewall -d 'Allow anyone to connect'
complete -c hypershell-server -l testnet -d 'Use a local testnet (bootstrap 127.0.0.1:40838)'
complete -c hypershell-server -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c hypershell-server -s h -l help -d 'Print help'
complete -c hypershell-server -s V -l version -d 'Print version'
