# %systemd_postun_with_restart semantics, for the daemon only. $1 is 0 after a removal, 1 after
# an upgrade (this script is the old package's, run once the new files are in place).
# Upgrade: try-restart the daemon so the new binary runs (a no-op when it was stopped). Never
# restart nodewarden-setup: docker.service requires it, so its restart restarts Docker and
# kills every task; the new setup runs at the next boot.
if command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart nodewarden.service >/dev/null 2>&1 || :
    fi
fi
