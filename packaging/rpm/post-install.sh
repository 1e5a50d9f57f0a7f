# rpm runs no %systemd_post macros for packages built without rpmbuild: this is their
# semantics. $1 is 1 on a first install, 2 on an upgrade.
# First install only: enable as the presets say (ours, 80-nodewarden.preset, enables both; a
# site preset may disable them), never re-enable on upgrade what an admin disabled.
# Nothing is started on a running host: Docker must not start before nodewarden-setup prepared
# its disk. Installed while the system boots (userdata's bootcmd), queue both units: the boot's
# jobs were queued before they were enabled (see packaging/debian/postinst).
if command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload preset nodewarden-setup.service nodewarden.service >/dev/null 2>&1 || :
        case "$(systemctl is-system-running 2>/dev/null)" in
            initializing|starting)
                systemctl start --no-block nodewarden-setup.service nodewarden.service >/dev/null 2>&1 || :
                ;;
        esac
    fi
    # Installed on a running host (not while it boots): Docker's place in this boot predates
    # nodewarden, so a Docker restart before the next boot never waits on a setup that has not run
    # or refused: Docker may start in this boot (/run is emptied at boot; setup decides from then).
    case "$(systemctl is-system-running 2>/dev/null)" in
        initializing|starting|offline|"") ;;
        *) mkdir -p /run/nodewarden && : >>/run/nodewarden/docker-ready ;;
    esac
fi
