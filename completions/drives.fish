# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_drives_global_optspecs
    string join \n encryption-key= h/help V/version
end

function __fish_drives_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_drives_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_drives_using_subcommand
    set -l cmd (__fish_drives_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c drives -n "__fish_drives_needs_command" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c drives -n "__fish_drives_needs_command" -s V -l version -d 'Print version'
complete -c drives -n "__fish_drives_needs_command" -f -a "init" -d 'Initializes a new storage on the cwd'
complete -c drives -n "__fish_drives_needs_command" -f -a "touch" -d 'Create a writable Hyperdrive'
complete -c drives -n "__fish_drives_needs_command" -f -a "mirror" -d 'Mirror a drive into another drive'
complete -c drives -n "__fish_drives_needs_command" -f -a "ls" -d 'List files of the drive'
complete -c drives -n "__fish_drives_needs_command" -f -a "seed" -d 'Seed a Hyperdrive to the DHT network'
complete -c drives -n "__fish_drives_needs_command" -f -a "download" -d 'Archive download a Hyperdrive by key'
complete -c drives -n "__fish_drives_needs_command" -f -a "serve" -d 'Creates a HTTP drive server'
complete -c drives -n "__fish_drives_needs_command" -f -a "put" -d 'Create a file'
complete -c drives -n "__fish_drives_needs_command" -f -a "entry" -d 'Show a single entry file'
complete -c drives -n "__fish_drives_needs_command" -f -a "get" -d 'Show the file content'
complete -c drives -n "__fish_drives_needs_command" -f -a "rm" -d 'Delete a file'
complete -c drives -n "__fish_drives_needs_command" -f -a "info" -d 'Show info about the Hyperdrive'
complete -c drives -n "__fish_drives_needs_command" -f -a "mount" -d 'Mount a hyperdrive as a folder (FUSE), in the foreground until unmounted'
complete -c drives -n "__fish_drives_needs_command" -f -a "purge" -d 'Delete all local storage of the drive'
complete -c drives -n "__fish_drives_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c drives -n "__fish_drives_using_subcommand init" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand init" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand touch" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand touch" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand touch" -l use-cwd -d 'Use cwd as the namespace'
complete -c drives -n "__fish_drives_using_subcommand touch" -l encrypted -d 'Encrypt the drive with a new random encryption key (printed; or the --encryption-key given)'
complete -c drives -n "__fish_drives_using_subcommand touch" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand mirror" -l prefix -d 'Prefix entries path' -r
complete -c drives -n "__fish_drives_using_subcommand mirror" -l filter -d 'Ignore entries (globs; without a leading `/` they match at any depth)' -r
complete -c drives -n "__fish_drives_using_subcommand mirror" -l version -d 'Use a specific version of the source' -r
complete -c drives -n "__fish_drives_using_subcommand mirror" -l timeout -d 'Give up (exit 1, nothing written) when no peer of a remote drive is found within SECONDS (default: wait as long as it takes, as JS drives)' -r
complete -c drives -n "__fish_drives_using_subcommand mirror" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand mirror" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand mirror" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand mirror" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand mirror" -l live -d 'Enables real-time sharing (keep following the source)'
complete -c drives -n "__fish_drives_using_subcommand mirror" -l dry-run -d 'Disables writing'
complete -c drives -n "__fish_drives_using_subcommand mirror" -l silent -d 'Print less information'
complete -c drives -n "__fish_drives_using_subcommand mirror" -l verbose -d 'Print more information'
complete -c drives -n "__fish_drives_using_subcommand mirror" -l no-chunking -d 'Write big files in fixed 64 KiB blocks (no content-defined chunking, no block maps: a changed file is written whole again)'
complete -c drives -n "__fish_drives_using_subcommand mirror" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand mirror" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand ls" -l prefix -d 'Prefix entries path' -r
complete -c drives -n "__fish_drives_using_subcommand ls" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand ls" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand ls" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand ls" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand ls" -s r -l recursive -d 'Recursive listing'
complete -c drives -n "__fish_drives_using_subcommand ls" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand ls" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand seed" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand seed" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand seed" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand seed" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand seed" -l all -d 'Seed every drive of the store (one swarm, one status line per drive)'
complete -c drives -n "__fish_drives_using_subcommand seed" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand seed" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand download" -l timeout -d 'Give up (exit 1, nothing written) when no peer of a remote drive is found within SECONDS (default: wait as long as it takes, as JS drives)' -r
complete -c drives -n "__fish_drives_using_subcommand download" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand download" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand download" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand download" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand download" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand download" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand serve" -l host -d 'Bind to address' -r
complete -c drives -n "__fish_drives_using_subcommand serve" -l port -d 'Bind to port' -r
complete -c drives -n "__fish_drives_using_subcommand serve" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand serve" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand serve" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand serve" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand serve" -l disable-any-port -d 'Disable random port if port in use'
complete -c drives -n "__fish_drives_using_subcommand serve" -l verbose -d 'Print more information'
complete -c drives -n "__fish_drives_using_subcommand serve" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand serve" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand put" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand put" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand put" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand put" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand put" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand put" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand entry" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand entry" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand entry" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand entry" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand entry" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand entry" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand get" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand get" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand get" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand get" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand get" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand get" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand rm" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand rm" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand rm" -s r -l recursive -d 'Recursively delete all sub files'
complete -c drives -n "__fish_drives_using_subcommand rm" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand info" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand info" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand info" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand mount" -l version -d 'Mount this version, read-only' -r
complete -c drives -n "__fish_drives_using_subcommand mount" -l timeout -d 'How long a read waits for a block no peer sends before it fails with EIO (default: 60)' -r
complete -c drives -n "__fish_drives_using_subcommand mount" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand mount" -l relay -d 'Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct path when a punch succeeds. Default: $HYPERDHT_RELAY' -r
complete -c drives -n "__fish_drives_using_subcommand mount" -l bootstrap -d 'Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives\' test flag)' -r
complete -c drives -n "__fish_drives_using_subcommand mount" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand mount" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c drives -n "__fish_drives_using_subcommand mount" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c drives -n "__fish_drives_using_subcommand purge" -l storage -d 'Storage path (the corestore is DIR/corestore)' -r -F
complete -c drives -n "__fish_drives_using_subcommand purge" -l encryption-key -d 'Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give it on every command. Without it, seed, download, info and purge of an encrypted drive work blind' -r
complete -c drives -n "__fish_drives_using_subcommand purge" -s h -l help -d 'Print help'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "init" -d 'Initializes a new storage on the cwd'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "touch" -d 'Create a writable Hyperdrive'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "mirror" -d 'Mirror a drive into another drive'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "ls" -d 'List files of the drive'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "seed" -d 'Seed a Hyperdrive to the DHT network'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "download" -d 'Archive download a Hyperdrive by key'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "serve" -d 'Creates a HTTP drive server'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "put" -d 'Create a file'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "entry" -d 'Show a single entry file'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "get" -d 'Show the file content'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "rm" -d 'Delete a file'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "info" -d 'Show info about the Hyperdrive'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "mount" -d 'Mount a hyperdrive as a folder (FUSE), in the foreground until unmounted'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "purge" -d 'Delete all local storage of the drive'
complete -c drives -n "__fish_drives_using_subcommand help; and not __fish_seen_subcommand_from init touch mirror ls seed download serve put entry get rm info mount purge help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
