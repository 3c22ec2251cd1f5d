complete -c hypertele-server -s l -d 'Port of the TCP service to expose to the peers' -r
complete -c hypertele-server -s u -d 'Unix domain socket of the service to expose, instead of a TCP port' -r -F
complete -c hypertele-server -l address -d 'Host of the TCP service' -r
complete -c hypertele-server -s c -d 'Configuration file (JSON: seed, allow, compress, keepAlive)' -r -F
complete -c hypertele-server -l seed -d 'Seed of the server\'s key pair, 64 hex digits (the configuration file\'s `seed` wins)' -r
complete -c hypertele-server -l bootstrap -d 'Bootstrap nodes of the DHT to use' -r
complete -c hypertele-server -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c hypertele-server -l private -d 'Make the proxy private: only peers holding the key pair derived from the seed get in'
complete -c hypertele-server -l compress -d 'Compress the traffic (one gzip member per message); the client must use --compress too'
complete -c hypertele-server -l cert-skip -d 'Accepted for compatibility; has no effect (the JS turns off TLS checks of Node, which has no bearing on a plain TCP proxy)'
complete -c hypertele-server -l debug -d 'Print connection counts every 5 seconds'
complete -c hypertele-server -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c hypertele-server -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hypertele-server -s V -l version -d 'Print version'
