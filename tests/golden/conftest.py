"""The golden folders hold data, not tests: the failure fixtures are broken on purpose."""

collect_ignore_glob = ["failures/fixtures/*", "failures/generate.py"]
