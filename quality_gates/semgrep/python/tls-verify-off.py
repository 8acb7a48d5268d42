import ssl

import requests


def bad(url):
    # ruleid: tls-verify-off
    requests.get(url, verify=False)
    # ruleid: tls-verify-off
    ctx = ssl._create_unverified_context()
    # ruleid: tls-verify-off
    ctx.check_hostname = False
    # ruleid: tls-verify-off
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def good(url):
    # ok: tls-verify-off
    requests.get(url, timeout=5)
    # ok: tls-verify-off
    return ssl.create_default_context()
