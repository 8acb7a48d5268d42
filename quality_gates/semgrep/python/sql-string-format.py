import sqlite3


def bad(name):
    db = sqlite3.connect(":memory:")
    # ruleid: sql-string-format
    db.execute("SELECT * FROM users WHERE name = '%s'" % name)
    # ruleid: sql-string-format
    db.execute(f"SELECT * FROM users WHERE name = '{name}'")
    # ruleid: sql-string-format
    db.execute("SELECT * FROM users WHERE name = '{}'".format(name))
    # ruleid: sql-string-format
    db.execute("SELECT * FROM users WHERE name = '" + name + "'")
    query = f"DELETE FROM users WHERE name = '{name}'"
    # ruleid: sql-string-format
    db.execute(query)


def good(name):
    db = sqlite3.connect(":memory:")
    # ok: sql-string-format
    db.execute("SELECT * FROM users WHERE name = ?", (name,))
    # ok: sql-string-format
    db.execute("SELECT 1")
