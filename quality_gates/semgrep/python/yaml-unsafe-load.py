import yaml


def bad(text):
    # ruleid: yaml-unsafe-load
    yaml.load(text)
    # ruleid: yaml-unsafe-load
    yaml.load(text, Loader=yaml.Loader)
    # ruleid: yaml-unsafe-load
    return yaml.unsafe_load(text)


def good(text):
    # ok: yaml-unsafe-load
    yaml.load(text, Loader=yaml.SafeLoader)
    # ok: yaml-unsafe-load
    return yaml.safe_load(text)
