import os

from flask import Flask

app = Flask(__name__)
# ruleid: debug-mode-on
app.config["DEBUG"] = True
# ruleid: debug-mode-on
DEBUG = True

if __name__ == "__main__":
    # ruleid: debug-mode-on
    app.run(host="127.0.0.1", debug=True)
    # ok: debug-mode-on
    app.run(debug=os.environ.get("FLASK_DEBUG") == "1")
