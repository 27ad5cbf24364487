"""File paths as index text, and as printable text.

On POSIX a file name is bytes. Python turns the bytes of a name that are not valid UTF-8 into lone
surrogates U+DC80..U+DCFF (the "surrogateescape" handler), so such a path is a `str` that opens the file
but that SQLite cannot store: its TEXT is UTF-8, which has no lone surrogates.

`to_db` maps each of those surrogates (one raw byte 0x80..0xFF) to U+EF80..U+EFFF, and `from_db` maps
them back. That private-use block is the one MirBSD's OPTU-8 uses for raw bytes, so it is unlikely to
clash with real names. A real name that does hold U+EF80..U+EFFF would be ambiguous once mapped, so
`to_db` refuses it (UnstorablePathError) and the indexer records that file with the reason instead.
The mapping is one character for one character, so a folder prefix of a path stays a prefix of its text.

`display` is the form for people and for JSON: valid Unicode with every raw byte written as `\\xNN`.
"""

from __future__ import annotations

import os
import re

from core.errors import PhotoSeekError

_ESCAPED_BYTES = range(0xDC80, 0xDD00)  # what surrogateescape makes of the bytes 0x80..0xFF
_SHIFT = 0xEF80 - 0xDC80
_TO_DB = {code: code + _SHIFT for code in _ESCAPED_BYTES}
_FROM_DB = {code + _SHIFT: code for code in _ESCAPED_BYTES}
_MAPPED = re.compile("[\uef80-\uefff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNPRINTABLE = re.compile("[\ud800-\udfff\uef80-\uefff]")


class UnstorablePathError(PhotoSeekError):
    """A path the index cannot hold as text without ambiguity (the file must be renamed to be indexed)."""


def to_db(path: str) -> str:
    """The index text of a real OS path: every undecodable byte (U+DC80..U+DCFF) becomes U+EF80..U+EFFF.

    Ordinary text, including any valid non-ASCII name, comes back unchanged. Raises UnstorablePathError
    for a name that already holds U+EF80..U+EFFF (it could not be told apart from a mapped byte) or a
    surrogate that surrogateescape never makes (e.g. an unpaired UTF-16 half from a Windows name).
    """
    if path.isascii():
        return path
    if _MAPPED.search(path):
        raise UnstorablePathError(
            f"{display(path)}: the name holds characters U+EF80..U+EFFF, which the index uses for bytes that "
            "are not UTF-8: rename the file to index it"
        )
    if not _SURROGATE.search(path):
        return path
    if any(_SURROGATE.match(ch) and ord(ch) not in _TO_DB for ch in path):
        raise UnstorablePathError(f"{display(path)}: the name holds an unpaired UTF-16 surrogate: rename the file")
    return path.translate(_TO_DB)


def from_db(text: str) -> str:
    """The real OS path of index text written by `to_db` (a str that opens the file)."""
    if text.isascii() or not _MAPPED.search(text):
        return text
    return text.translate(_FROM_DB)


def display(path: str) -> str:
    """A printable form of a path: raw bytes as `\\xe9`, other lone surrogates as `\\udXXX`, and
    U+EF80..U+EFFF as `\\uefXX` so they are not mistaken for bytes. Ordinary text is returned unchanged.

    It is always valid Unicode (safe for Qt, JSON and any UTF-8 terminal) but does not open the file.
    """
    if path.isascii():
        return path
    return _UNPRINTABLE.sub(_escape, path)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if code in _TO_DB else f"\\u{code:04x}"


def error_key(path: str) -> str:
    """The text a file's indexing error is recorded under: the path itself when `to_db` accepts it,
    else `display(path)` (which it always accepts)."""
    try:
        to_db(path)
    except UnstorablePathError:
        return display(path)
    return path


def path_range(folder: str) -> tuple[str, str]:
    """Index text bounds (low inclusive, high exclusive) of every path under a folder. `to_db` maps character for
    character, so the index text of a folder's paths starts with the index text of the folder."""
    prefix = to_db(folder.rstrip(os.sep) + os.sep)
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)
