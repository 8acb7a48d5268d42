"""How an existing text file is written, so that the agent's edits keep it that way.

A file's encoding, byte-order mark, line endings and final newline belong to the
project, not to the model: `edit_file` changes the text it was asked to and nothing
else, and `write_file` over an existing file keeps its BOM and CRLF line endings unless
the new content brings its own `\\r\\n`.

A file that starts with a UTF-16 or UTF-32 byte-order mark is read and written in that
encoding (PowerShell and Visual Studio write such files). Files that are not valid UTF-8
(and have no such mark) are edited as latin-1: one byte per character, so every
byte the edit does not touch is written back exactly as it was, and an edit whose text
can not be written in one byte per character is refused rather than guessed (a file in
another 8-bit encoding then keeps its bytes; only the replaced span is the model's).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, replace

BOM = codecs.BOM_UTF8
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16's: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class TextStyle:
    bom: bool = False
    crlf: bool = False
    """Most line endings are `\\r\\n`."""
    latin1: bool = False
    """Not valid in its encoding: decoded and written back one byte per character."""
    final_newline: bool = False
    encoding: str = "utf-8"
    """The codec of the text after its byte-order mark."""


def marked(data: bytes) -> tuple[bytes, str]:
    """The byte-order mark `data` starts with (or none), and the encoding it names."""
    for mark, encoding in _MARKS:
        if data.startswith(mark):
            return mark, encoding
    return b"", "utf-8"


def style_of(data: bytes) -> TextStyle:
    """The style of a file's content, from its bytes (the head of the file will do,
    except for `final_newline` and `latin1`)."""
    mark, encoding = marked(data)
    if encoding == "utf-8":
        crlf, newlines, last = data.count(b"\r\n"), data.count(b"\n"), data.endswith(b"\n")
    else:
        text = data[len(mark) :].decode(encoding, errors="replace")
        crlf, newlines, last = text.count("\r\n"), text.count("\n"), text.endswith("\n")
    return TextStyle(bom=bool(mark), crlf=crlf > 0 and crlf * 2 >= newlines,
                     final_newline=last, encoding=encoding)  # fmt: skip


def decode(data: bytes) -> tuple[str, TextStyle]:
    """The text of a file (without its BOM) and how to write it back."""
    style = style_of(data)
    mark, _ = marked(data)
    body = data[len(mark) :]
    try:
        return body.decode(style.encoding), style
    except UnicodeDecodeError:  # every byte kept: latin-1 holds them one per character
        return body.decode("latin-1"), replace(style, latin1=True)


def encode(text: str, style: TextStyle) -> bytes:
    """`text` in the file's encoding; UnicodeEncodeError when a latin-1 file can't hold it."""
    data = text.encode("latin-1" if style.latin1 else style.encoding)
    mark = next(m for m, encoding in _MARKS if encoding == style.encoding)
    return mark + data if style.bom and not data.startswith(mark) else data


def read_text(data: bytes) -> str | None:
    """A file's text for `read_file`, or None when it is binary (a NUL in its head and no
    UTF-16/32 byte-order mark)."""
    mark, encoding = marked(data)
    if encoding == "utf-8" and b"\0" in data[:8000]:
        return None
    return data[len(mark) :].decode(encoding, errors="replace")


def to_crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def written(content: str, existing: TextStyle | None) -> bytes:
    """What `write_file` writes: UTF-8 (or the existing file's UTF-16/32), with the existing
    file's BOM and CRLF endings unless `content` has `\\r\\n` of its own."""
    if existing is None:
        return content.encode("utf-8")
    if existing.crlf and "\r\n" not in content:
        content = to_crlf(content)
    if content.startswith("\ufeff"):
        content = content[1:]
    return encode(content, TextStyle(bom=existing.bom, encoding=existing.encoding))


def edited(text: str, style: TextStyle, old: str, new: str) -> tuple[str, int]:
    """`text` with the one occurrence of `old` replaced, and how many there were (the
    replacement happens only when there was exactly one). In a CRLF file, `old` and
    `new` written with `\\n` are matched and written with `\\r\\n`; a lost final newline
    is put back."""
    old = old.removeprefix("\ufeff")
    tries = [(old, new)]
    if style.crlf and "\n" in old + new and "\r\n" not in old + new:
        tries.insert(0, (to_crlf(old), to_crlf(new)))
    count = 0
    for find, into in tries:
        count = text.count(find) if find else 0
        if count == 1:
            result = text.replace(find, into, 1)
            if style.final_newline and not result.endswith("\n"):
                result += "\r\n" if style.crlf else "\n"
            return result, 1
        if count > 1:
            break
    return text, count
