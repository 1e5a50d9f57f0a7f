# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_nodewarden_global_optspecs
    string join \n settings= root= h/help V/version
end

function __fish_nodewarden_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_nodewarden_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_nodewarden_using_subcommand
    set -l cmd (__fish_nodewarden_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c nodewarden -n "__fish_nodewarden_needs_command" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_needs_command" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_needs_command" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "run" -d 'The daemon: supervise the ECS agent, watch the disk, garbage-collect, drain, serve health'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "setup" -d 'The oneshot before Docker starts: userdata → settings → disk → daemon.json → ecs.config'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "check" -d 'Validate settings and print the merged result with each value\'s source'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "status" -d 'Show the node\'s conditions and figures from the running daemon\'s health endpoint'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "gc" -d 'Garbage-collect Docker\'s disk once'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "drain" -d 'Set this container instance to DRAINING (recorded as an operator\'s drain)'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "undrain" -d 'Return this container instance to ACTIVE'
complete -c nodewarden -n "__fish_nodewarden_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand run" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand run" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand run" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand run" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l userdata -d 'Read userdata from FILE instead of IMDS' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l device-wait -d 'How long to wait for the Docker data device to appear' -r
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l imds-deadline -d 'How long to keep trying IMDS for userdata before failing' -r
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l undo -d 'Remove what setup applied to the host\'s network (route_localnet, iptables rules)'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l no-userdata -d 'Take no settings from userdata (hosts without IMDS, such as ECS Anywhere)'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -l host-network -d 'Prepare the host network (route_localnet, iptables) even under a --root other than /'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand setup" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand check" -l userdata -d 'Userdata to merge on top, as EC2 would serve it (TOML, gzip, or multipart MIME)' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand check" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand check" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand check" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand check" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand status" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand status" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand status" -l json -d 'Print the raw /status JSON document'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand status" -l check -d 'Answer as a monitoring plugin: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand status" -l watch -d 'Refresh the summary in place every 2 seconds'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand status" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand status" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand gc" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand gc" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand gc" -l dry-run -d 'Print the plan (what, why, bytes) and remove nothing'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand gc" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand gc" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand drain" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand drain" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand drain" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand drain" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand undrain" -l settings -d 'Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand undrain" -l root -d 'Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR' -r -F
complete -c nodewarden -n "__fish_nodewarden_using_subcommand undrain" -s h -l help -d 'Print help'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand undrain" -s V -l version -d 'Print version'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "run" -d 'The daemon: supervise the ECS agent, watch the disk, garbage-collect, drain, serve health'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "setup" -d 'The oneshot before Docker starts: userdata → settings → disk → daemon.json → ecs.config'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "check" -d 'Validate settings and print the merged result with each value\'s source'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "status" -d 'Show the node\'s conditions and figures from the running daemon\'s health endpoint'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "gc" -d 'Garbage-collect Docker\'s disk once'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "drain" -d 'Set this container instance to DRAINING (recorded as an operator\'s drain)'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "undrain" -d 'Return this container instance to ACTIVE'
complete -c nodewarden -n "__fish_nodewarden_using_subcommand help; and not __fish_seen_subcommand_from run setup check status gc drain undrain help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
