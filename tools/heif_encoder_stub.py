"""A stand-in for the x265 HEVC encoder that pillow-heif's libheif links, for the packaged app (build.spec).

PhotoSeek reads HEIC photos (libheif decodes them through libde265) and never writes one, but libheif links the x265
encoder, 20 MB after stripping, and the loader refuses libheif without it. libheif calls x265 only from its encoder
plugin, through two functions: `x265_api_get_<build>`, whose result may be NULL (the plugin then names no version and
answers an encode with "bit depth not supported"), and `x265_cleanup`. A library of the same name that defines just
those two keeps decoding exactly as it was and turns encoding into that error. When libheif asks for anything else
(another pillow-heif), no stub is made and the real encoder stays.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

API_GET = re.compile(r"x265_api_get_\d+")
CLEANUP = "x265_cleanup"


class StubUnavailable(Exception):
    """The stub cannot be made here; the reason says why, and the real library should be kept."""


def build_x265_stub(libheif: Path, x265: Path, dest_dir: Path) -> Path:
    """Compile the stand-in for `x265` (the library `libheif` links) into dest_dir under x265's file name."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or shutil.which("readelf") is None:
        raise StubUnavailable("no C compiler (cc) or readelf")
    wanted = sorted(name for name in undefined_symbols(libheif) if name.startswith("x265"))
    api_get = [name for name in wanted if API_GET.fullmatch(name)]
    if len(api_get) != 1 or set(wanted) - {api_get[0], CLEANUP}:
        raise StubUnavailable(f"libheif asks x265 for {wanted}, not just x265_api_get_N and x265_cleanup")
    dest_dir.mkdir(parents=True, exist_ok=True)
    source = dest_dir / "x265_stub.c"
    source.write_text(
        "/* PhotoSeek's stand-in for the x265 encoder: no encoder API, so libheif cannot encode HEVC. */\n"
        f"const void *{api_get[0]}(int bit_depth) {{ (void)bit_depth; return 0; }}\n"
        f"void {CLEANUP}(void) {{}}\n"
    )
    stub = dest_dir / x265.name
    command = [compiler, "-shared", "-fPIC", "-O2", "-s", f"-Wl,-soname,{soname(x265)}", "-o", str(stub), str(source)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise StubUnavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return stub


def undefined_symbols(library: Path) -> set[str]:
    """Names (with any @version) of the dynamic symbols `library` imports from other libraries."""
    table = subprocess.run(["readelf", "--dyn-syms", "-W", str(library)], capture_output=True, text=True, check=True)
    names = set()
    for line in table.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[6] == "UND" and fields[7]:
            names.add(fields[7])
    return names


def soname(library: Path) -> str:
    """The library's DT_SONAME, or its file name when it has none."""
    dynamic = subprocess.run(["readelf", "-d", "-W", str(library)], capture_output=True, text=True, check=True).stdout
    found = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", dynamic)
    return found.group(1) if found else library.name
