import tempfile
from tempfile import mktemp


def bad():
    # ruleid: tempfile-mktemp
    a = tempfile.mktemp()
    # ruleid: tempfile-mktemp
    b = mktemp(suffix=".txt")
    return a, b


def good():
    # ok: tempfile-mktemp
    return tempfile.mkstemp()
