#part-handler
# Tells cloud-init that the application/toml part is known (it is nodewarden's settings, which
# nodewarden reads from IMDS itself), so cloud-init does not log "Unhandled unknown
# content-type (application/toml)" at every boot. It does nothing with the part.


def list_types():
    return ["application/toml"]


def handle_part(data, ctype, filename, payload):
    pass
