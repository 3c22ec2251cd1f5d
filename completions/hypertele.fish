complete -c hypertele -s p -d 'Local port to listen on (0 picks a free one)' -r
complete -c hypertele -s u -d 'Local Unix domain socket to listen on, instead of a TCP port' -r -F
complete -c hypertele -l address -d 'Local address to listen on' -r
complete -c hypertele -s c -d 'Configuration file (JSON: peer, compress, keepAlive)' -r -F
complete -c hypertele -s i -d 'Identity file: the key pair this client connects with' -r -F
complete -c hypertele -s s -d 'The server: its public key or a .hyper-hosts name; with --private, the server\'s seed' -r
complete -c hypertele -l bootstrap -d 'Bootstrap nodes of the DHT to use' -r
complete -c hypertele -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c hypertele -l private -d 'Access a private server: -s is the server\'s seed, and this client connects with the key pair derived from it'
complete -c hypertele -l compress -d 'Compress the traffic (one gzip member per message); the server must use --compress too'
complete -c hypertele -l debug -d 'Print connection counts every 5 seconds'
complete -c hypertele -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c hypertele -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hypertele -s V -l version -d 'Print version'
