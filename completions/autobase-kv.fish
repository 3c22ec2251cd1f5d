# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_autobase_kv_global_optspecs
    string join \n h/help V/version
end

function __fish_autobase_kv_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_autobase_kv_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_autobase_kv_using_subcommand
    set -l cmd (__fish_autobase_kv_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -s V -l version -d 'Print version'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "create" -d 'Create a base in DIR: prints the base key, then the local writer key'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "join" -d 'Join the base BASE_KEY with a new writer in DIR: prints the local writer key'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "add-writer" -d 'Add a writer (its key from `join`) to the base'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "remove-writer" -d 'Remove a writer: its blocks after the removal are not applied'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "put" -d 'Set KEY to VALUE'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "del" -d 'Delete KEY'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "get" -d 'Print KEY\'s value (exit status 1 when it is not set)'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "list" -d 'Print every entry as KEY<TAB>VALUE, in key order'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "info" -d 'Print the base\'s state as one JSON line: keys, writability, view and system lengths, the system\'s indexers, heads and members, and how many blocks of each member\'s core the store holds'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "sync" -d 'Replicate with the base\'s peers for N seconds (or until Ctrl-C), then apply what arrived and exit; prints {"fastForward":{"to":N,"from":M}} when the base fast-forwards to a peer\'s signed state'
complete -c autobase-kv -n "__fish_autobase_kv_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand create" -l encryption-key -d 'Encrypt the base with this key (64 hex characters; JS autobase\'s `encryptionKey`): writer, system and view blocks are stored encrypted. Kept in the store: later commands need not repeat it' -r
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand create" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand join" -l encryption-key -d 'The base\'s encryption key (64 hex characters), when it is encrypted. Kept in the store' -r
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand join" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand add-writer" -l indexer -d 'Make it an indexer (one of the writers whose acks make the order final)'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand add-writer" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand remove-writer" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand put" -l optimistic -d 'Append optimistically (JS `append(value, { optimistic: true })`), also from a store that is not a writer of the base: peers apply the put and ack its writer (a removed member at that length, so it stays unable to write plainly); any other optimistic op is dropped'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand put" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand del" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand get" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand list" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand info" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand sync" -l seconds -d 'How long to stay connected' -r
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand sync" -l bootstrap -d 'Bootstrap nodes of the DHT to use' -r
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand sync" -l no-lan -d 'Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by default, Rust peers only) connects peers on one LAN when no DHT node is reachable'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand sync" -s h -l help -d 'Print help'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "create" -d 'Create a base in DIR: prints the base key, then the local writer key'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "join" -d 'Join the base BASE_KEY with a new writer in DIR: prints the local writer key'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "add-writer" -d 'Add a writer (its key from `join`) to the base'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "remove-writer" -d 'Remove a writer: its blocks after the removal are not applied'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "put" -d 'Set KEY to VALUE'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "del" -d 'Delete KEY'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "get" -d 'Print KEY\'s value (exit status 1 when it is not set)'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "list" -d 'Print every entry as KEY<TAB>VALUE, in key order'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "info" -d 'Print the base\'s state as one JSON line: keys, writability, view and system lengths, the system\'s indexers, heads and members, and how many blocks of each member\'s core the store holds'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "sync" -d 'Replicate with the base\'s peers for N seconds (or until Ctrl-C), then apply what arrived and exit; prints {"fastForward":{"to":N,"from":M}} when the base fast-forwards to a peer\'s signed state'
complete -c autobase-kv -n "__fish_autobase_kv_using_subcommand help; and not __fish_seen_subcommand_from create join add-writer remove-writer put del get list info sync help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
