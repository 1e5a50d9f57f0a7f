# On removal (not upgrade): stop and disable the daemon. The ECS agent keeps running.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now nodewarden.service >/dev/null 2>&1 || :
    systemctl disable nodewarden-setup.service >/dev/null 2>&1 || :
fi
