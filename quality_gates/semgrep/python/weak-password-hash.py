import hashlib
import os


def bad(password):
    # ruleid: weak-password-hash
    digest = hashlib.md5(password.encode()).hexdigest()
    # ruleid: weak-password-hash
    other = hashlib.sha1(password.encode("utf-8")).hexdigest()
    return digest, other


def good(password, data):
    salt = os.urandom(16)
    # ok: weak-password-hash
    key = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    # ok: weak-password-hash
    checksum = hashlib.sha256(data).hexdigest()
    return key, checksum
