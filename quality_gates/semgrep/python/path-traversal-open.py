import os

from flask import Flask, request

app = Flask(__name__)


@app.route("/read")
def read():
    name = request.args.get("name")
    # ruleid: path-traversal-open
    with open(os.path.join("files", name)) as handle:
        return handle.read()


@app.route("/safe")
def safe():
    name = os.path.basename(request.args.get("name"))
    # ok: path-traversal-open
    with open(os.path.join("files", name)) as handle:
        return handle.read()


def cli():
    # ruleid: path-traversal-open
    return open(input("file: ")).read()
