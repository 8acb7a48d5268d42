import os
import subprocess


def bad(name):
    # ruleid: subprocess-shell-true
    subprocess.run(f"ls {name}", shell=True)
    # ruleid: subprocess-shell-true
    subprocess.check_output("cat " + name, shell=True)
    # ruleid: subprocess-shell-true
    os.system("rm " + name)


def good(name):
    # ok: subprocess-shell-true
    subprocess.run(["ls", name], shell=False)
    # ok: subprocess-shell-true
    subprocess.run(["ls", name])
