complete -c hyperdht -l bootstrap -d 'Without a value (or followed by another flag): run a bootstrap node at --host/--port. With a list: join the network of those bootstrap nodes' -r
complete -c hyperdht -l nodes -d 'How many DHT nodes to run' -r
complete -c hyperdht -l port -d 'UDP port to bind (default: any free port for nodes, 49737 for a bootstrap node; the first node\'s port with --testnet). Only with a single node' -r
complete -c hyperdht -l host -d 'Address to bind (default 0.0.0.0); for a bootstrap node, its public IPv4 address (required)' -r
complete -c hyperdht -l testnet -d 'Run a local network of N nodes on 127.0.0.1 and print its bootstrap list (HOST:PORT[,HOST:PORT...]) as the first line of stdout' -r
complete -c hyperdht -l seed -d 'The relay\'s key pair seed (64 hex digits), for a stable public key (default: a random key pair)' -r
complete -c hyperdht -l relay -d 'Run a blind relay (blind-relay 1.6.1 on a HyperDHT server) that peers name with relayThrough; prints its public key (hex) as the first line of stdout'
complete -c hyperdht -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hyperdht -s V -l version -d 'Print version'
