# rpm runs no %systemd_post macros for packages built without rpmbuild: do it here.
# Enable without starting: Docker must not start before nodewarden-setup prepared its disk.
if command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl enable nodewarden-setup.service nodewarden.service >/dev/null 2>&1 || :
fi
