"""Untrusted text, one home: what is redacted, made inert, escaped, or kept as it was written.

- `redact`: credentials and the host's secrets replaced (`redact`, `redact_value`, `redact_json`).
- `inert`: model or tool text made printable and command-free (`plain`, `log_safe`, `inert_lines`).
- `markdown`, `html`: untrusted text escaped for Markdown (`md_inline`, …) and HTML (`h`, `Safe`).
- `style`: a file's encoding and line endings, kept when the agent edits it.
"""
