"""The Linux menu entry: `python -m desktop --install-desktop-entry` writes a valid .desktop file and the icons into
$XDG_DATA_HOME (else ~/.local/share), run as the user would, against a temporary HOME."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
from pathlib import Path

from desktop.desktop_entry import entry_text
from tests.support.paths import REPO


def run_desktop(home: Path, *args: str, xdg_data_home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "PHOTOSEEK_HOME")}
    env["HOME"] = str(home)
    if xdg_data_home is not None:
        env["XDG_DATA_HOME"] = str(xdg_data_home)
    return subprocess.run(
        [sys.executable, "-m", "desktop", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_install_writes_the_entry_and_icons_under_the_home_data_folder_and_remove_takes_them_out(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    done = run_desktop(home, "--install-desktop-entry")
    assert done.returncode == 0, done.stderr
    desktop_file = home / ".local" / "share" / "applications" / "photoseek.desktop"
    assert str(desktop_file) in done.stdout
    entry = read_entry(desktop_file)
    assert entry["Type"] == "Application" and entry["Name"] == "PhotoSeek" and entry["Icon"] == "photoseek"
    assert shlex.split(entry["Exec"]) == [sys.executable, "-m", "desktop", "%F"]
    assert entry["Terminal"] == "false" and "Photography" in entry["Categories"]
    icons = home / ".local" / "share" / "icons" / "hicolor"
    shipped = {"64x64/apps/photoseek.png": "photoseek-64.png", "256x256/apps/photoseek.png": "photoseek-256.png"}
    shipped["scalable/apps/photoseek.svg"] = "photoseek.svg"
    for installed, source in shipped.items():
        assert (icons / installed).read_bytes() == (REPO / "assets" / "icons" / source).read_bytes()
    assert sorted(p.name for p in home.rglob("*") if p.is_file()) == sorted(
        ["photoseek.desktop", "photoseek.png", "photoseek.png", "photoseek.svg"]
    )  # nothing else written (no temporary files left)

    removed = run_desktop(home, "--remove-desktop-entry")
    assert removed.returncode == 0 and not desktop_file.exists()
    assert not [p for p in home.rglob("*") if p.is_file()]


def test_xdg_data_home_is_honoured(tmp_path: Path) -> None:
    done = run_desktop(tmp_path / "home", "--install-desktop-entry", xdg_data_home=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "applications" / "photoseek.desktop").is_file()
    assert (tmp_path / "data" / "icons" / "hicolor" / "256x256" / "apps" / "photoseek.png").is_file()
    assert not (tmp_path / "home" / ".local").exists()


def exec_arguments(value: str) -> list[str]:
    """Split an Exec value as the Desktop Entry spec says: the string's own escapes first (\\\\ is \\), then
    arguments separated by spaces, double-quoted ones with \\", \\`, \\$ and \\\\ escaped inside."""
    value = value.replace("\\\\", "\\")
    args, current, quoted, i = [], "", False, 0
    while i < len(value):
        char = value[i]
        if quoted and char == "\\" and value[i + 1] in '"`$\\':
            current, i = current + value[i + 1], i + 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            args, current = args + [current], ""
        else:
            current += char
        i += 1
    return args + [current]


def test_a_program_path_with_spaces_and_quotes_is_quoted_for_the_exec_line() -> None:
    program = "/opt/Photo Seek/it's $here \\ 100%/PhotoSeek"
    line = next(line for line in entry_text([program]).splitlines() if line.startswith("Exec="))
    assert exec_arguments(line[len("Exec=") :]) == [program.replace("%", "%%"), "%F"]  # %% is the field code for %
