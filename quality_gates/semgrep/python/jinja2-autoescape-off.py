import jinja2
from jinja2 import Environment, FileSystemLoader, select_autoescape

# ruleid: jinja2-autoescape-off
a = jinja2.Environment(loader=FileSystemLoader("templates"))
# ruleid: jinja2-autoescape-off
b = Environment(loader=FileSystemLoader("templates"), autoescape=False)
# ok: jinja2-autoescape-off
c = Environment(loader=FileSystemLoader("templates"), autoescape=select_autoescape())
