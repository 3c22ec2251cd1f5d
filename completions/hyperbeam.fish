complete -c hyperbeam -l bootstrap -d 'Bootstrap nodes of the DHT to use' -r
complete -c hyperbeam -s r -l reuse -d 'Announce (listen) with the given passphrase instead of connecting: restarts the listening side of a pipe'
complete -c hyperbeam -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hyperbeam -s V -l version -d 'Print version'
