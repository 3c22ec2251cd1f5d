complete -c hypershell-copy -s f -d 'Filename of the client seed key' -r -F
complete -c hypershell-copy -l bootstrap -d 'Bootstrap nodes of the DHT to use (default: HYPERDHT_BOOTSTRAP, else the public nodes)' -r
complete -c hypershell-copy -l testnet -d 'Use a local testnet (bootstrap 127.0.0.1:40838)'
complete -c hypershell-copy -s h -l help -d 'Print help'
complete -c hypershell-copy -s V -l version -d 'Print version'
