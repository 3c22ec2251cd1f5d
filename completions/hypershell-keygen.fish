complete -c hypershell-keygen -s f -d 'Filename of the seed key file (asked for when not given)' -r -F
complete -c hypershell-keygen -s c -d 'Provides a new comment' -r
complete -c hypershell-keygen -s h -l help -d 'Print help'
complete -c hypershell-keygen -s V -l version -d 'Print version'
