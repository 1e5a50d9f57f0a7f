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
fi
