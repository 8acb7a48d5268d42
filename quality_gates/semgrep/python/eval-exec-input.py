import ast


def calc():
    # ruleid: eval-exec-input
    return eval(input("expr: "))


def run(code):
    # ruleid: eval-exec-input
    exec(code, {})


def fine(text):
    # ok: eval-exec-input
    eval("1 + 1")
    # ok: eval-exec-input
    return ast.literal_eval(text)
