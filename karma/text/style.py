"""How an existing text file is written, so that the agent's edits keep it that way.

A file's encoding, byte-order mark, line endings and final newline belong to the
project, not to the model: `edit_file` changes the text it was asked to and nothing
else, and `write_file` over an existing file keeps its BOM and CRLF line endings unless
the new content brings its own `\\r\\n`.

Files that are not valid UTF-8 are edited as latin-1: one byte per character, so every
byte the edit does not touch is written back exactly as it was, and an edit whose text
can not be written in one byte per character is refused rather than guessed (a file in
another 8-bit encoding then keeps its bytes; only the replaced span is the model's).
"""

from __future__ import annotations

from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class TextStyle:
    bom: bool = False
    crlf: bool = False
    """Most line endings are `\\r\\n`."""
    latin1: bool = False
    """Not valid UTF-8: decoded and written back one byte per character."""
    final_newline: bool = False


def style_of(data: bytes) -> TextStyle:
    """The style of a file's content, from its bytes (the head of the file will do,
    except for `final_newline` and `latin1`)."""
    crlf = data.count(b"\r\n")
    return TextStyle(
        bom=data.startswith(BOM),
        crlf=crlf > 0 and crlf * 2 >= data.count(b"\n"),
        final_newline=data.endswith(b"\n"),
    )


def decode(data: bytes) -> tuple[str, TextStyle]:
    """The text of a file (without its BOM) and how to write it back."""
    style = style_of(data)
    body = data[len(BOM) :] if style.bom else data
    try:
        return body.decode("utf-8"), style
    except UnicodeDecodeError:
        return body.decode("latin-1"), TextStyle(style.bom, style.crlf, True, style.final_newline)


def encode(text: str, style: TextStyle) -> bytes:
    """`text` in the file's encoding; UnicodeEncodeError when a latin-1 file can't hold it."""
    data = text.encode("latin-1" if style.latin1 else "utf-8")
    return BOM + data if style.bom and not data.startswith(BOM) else data


def to_crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def written(content: str, existing: TextStyle | None) -> bytes:
    """What `write_file` writes: UTF-8, with the existing file's BOM and CRLF endings
    unless `content` has `\\r\\n` of its own."""
    if existing is None:
        return content.encode("utf-8")
    if existing.crlf and "\r\n" not in content:
        content = to_crlf(content)
    if content.startswith("\ufeff"):
        content = content[1:]
    return encode(content, TextStyle(bom=existing.bom))


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
    for find, replace in tries:
        count = text.count(find) if find else 0
        if count == 1:
            result = text.replace(find, replace, 1)
            if style.final_newline and not result.endswith("\n"):
                result += "\r\n" if style.crlf else "\n"
            return result, 1
        if count > 1:
            break
    return text, count
