# %systemd_preun semantics. $1 is 0 on removal, 1 on an upgrade (nothing to do then).
# On removal: stop and disable the daemon; disable setup but never stop it: docker.service
# requires it, and stopping it would stop Docker and every task. The ECS agent keeps running.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable --now nodewarden.service >/dev/null 2>&1 || :
    systemctl --no-reload disable nodewarden-setup.service >/dev/null 2>&1 || :
fi
