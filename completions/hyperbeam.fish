complete -c hyperbeam -l bootstrap -d 'Bootstrap nodes of the DHT to use' -r
complete -c hyperbeam -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c hyperbeam -s r -l reuse -d 'Announce (listen) with the given passphrase instead of connecting: restarts the listening side of a pipe'
complete -c hyperbeam -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c hyperbeam -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hyperbeam -s V -l version -d 'Print version'
