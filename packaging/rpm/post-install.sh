# rpm runs no %systemd_post macros for packages built without rpmbuild: do it here.
# Enable without starting on a running host: Docker must not start before nodewarden-setup
# prepared its disk. Installed while the system boots (userdata's bootcmd), queue both units:
# the boot's jobs were queued before they were enabled (see packaging/debian/postinst).
if command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl enable nodewarden-setup.service nodewarden.service >/dev/null 2>&1 || :
    case "$(systemctl is-system-running 2>/dev/null)" in
        initializing|starting)
            systemctl start --no-block nodewarden-setup.service nodewarden.service >/dev/null 2>&1 || :
            ;;
    esac
fi
