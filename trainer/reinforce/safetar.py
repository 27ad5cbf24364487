"""Read webdataset-style tar shards as untrusted input: validated member names, capped sizes, no links.

Members are never extracted to disk; still, a shard whose names are absolute, climb out with ``..`` or are links
is refused, because no honest shard has them. A member larger than the cap is refused before it is read, so a
hostile header cannot make the reader allocate gigabytes. A plain tar must end with tar's end-of-archive zero
blocks, which catches shards cut off at a member boundary (tarfile itself would read those as a shorter archive).
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import PhotoSeekError

_DRIVE = re.compile(r"^[A-Za-z]:")
_GZIP_MAGIC = b"\x1f\x8b"


class ShardError(PhotoSeekError):
    """A shard that is refused as a whole (corrupt, truncated or hostile)."""


class SampleError(PhotoSeekError):
    """One sample of a shard that cannot be used; the rest of the shard can."""


@dataclass(frozen=True)
class Limits:
    """Caps on what one shard may make the reader load."""

    member_bytes: int = 64 << 20  # one tar member (an image, an npz)
    json_bytes: int = 1 << 20  # one JSON or text member
    npz_bytes: int = 256 << 20  # arrays of one npz once decompressed
    members_per_sample: int = 64
    name_chars: int = 512


DEFAULT_LIMITS = Limits()


def check_member_name(name: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """The member name without a leading ``./``; raises ShardError for absolute, climbing or odd names."""
    if not name or len(name) > limits.name_chars:
        raise ShardError(f"member name of {len(name)} characters is empty or too long")
    if "\x00" in name or "\\" in name:
        raise ShardError(f"member name {name[:80]!r} contains a NUL or a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise ShardError(f"member name {name[:80]!r} is an absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise ShardError(f"member name {name[:80]!r} climbs out of the shard with '..'")
    while parts and parts[0] == ".":
        parts = parts[1:]
    return "/".join(parts)


def split_key(name: str) -> tuple[str, str]:
    """Webdataset key and extension of a member: ``dir/000123.syn.json`` -> (``dir/000123``, ``syn.json``)."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _check_end_marker(path: Path) -> None:
    """Refuse a plain tar that does not end in zero blocks (cut off), before reading any of it."""
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
            if head == _GZIP_MAGIC:
                return  # gzip checks its own end: a cut stream fails while reading
            size = handle.seek(0, 2)
            if size < 1024 or size % 512:
                raise ShardError(f"{path}: truncated tar ({size} bytes is not a whole number of 512-byte blocks)")
            handle.seek(size - 1024)
            if handle.read(1024).count(0) != 1024:
                raise ShardError(f"{path}: truncated tar (no end-of-archive marker)")
    except OSError as exc:
        raise ShardError(f"{path}: cannot read the shard: {exc}") from exc


def iter_members(path: Path, limits: Limits = DEFAULT_LIMITS) -> Iterator[tuple[str, bytes]]:
    """(validated name, bytes) of every regular-file member, in archive order; raises ShardError when refused."""
    path = Path(path)
    _check_end_marker(path)
    try:
        with path.open("rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as archive:
            for member in archive:
                if member.isdir():
                    continue
                name = check_member_name(member.name, limits)
                if not member.isfile():
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise ShardError(f"member {name[:80]!r} is a {kind}; shards may only hold regular files")
                if member.size > limits.member_bytes:
                    raise ShardError(
                        f"member {name[:80]!r} is {member.size:,} bytes, over the {limits.member_bytes:,}-byte limit"
                    )
                stream = archive.extractfile(member)
                data = stream.read() if stream is not None else b""
                if len(data) != member.size:
                    raise ShardError(f"member {name[:80]!r} is cut off ({len(data)} of {member.size} bytes)")
                yield name, data
    except ShardError as exc:
        raise ShardError(f"{path}: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ShardError(f"{path}: truncated or corrupt tar: {exc}") from exc


def iter_samples(path: Path, limits: Limits = DEFAULT_LIMITS) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group consecutive members by webdataset key: yields (key, {extension: bytes}); raises ShardError."""
    key: str | None = None
    members: dict[str, bytes] = {}
    for name, data in iter_members(path, limits):
        sample_key, ext = split_key(name)
        if not ext or sample_key.rpartition("/")[2].startswith("__"):
            continue  # no extension, or webdataset metadata such as __index__: not part of a sample
        if sample_key != key:
            if key is not None:
                yield key, members
            key, members = sample_key, {}
        if ext in members:
            raise ShardError(f"{path}: sample {sample_key!r} has two '{ext}' members")
        if len(members) >= limits.members_per_sample:
            raise ShardError(f"{path}: sample {sample_key!r} has more than {limits.members_per_sample} members")
        members[ext] = data
    if key is not None:
        yield key, members
