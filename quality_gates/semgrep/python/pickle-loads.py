import json
import pickle


def bad(blob, handle):
    # ruleid: pickle-loads
    obj = pickle.loads(blob)
    # ruleid: pickle-loads
    other = pickle.load(handle)
    return obj, other


def good(blob):
    # ok: pickle-loads
    return json.loads(blob)
