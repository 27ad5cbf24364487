"""The import contract: core runs without torch or Qt, and the desktop app runs without torch or the trainer.

Each check imports every module of a package in a fresh interpreter and names, for each forbidden module that
got loaded, the package module whose code imported it (and the third-party module in between, if any).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

from tests.support.paths import REPO

# argv: package name, then the forbidden top-level module names. Prints one JSON object. A meta path finder that
# finds nothing sees every first import of a forbidden module and names the package module whose code asked.
_CHILD = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, traceback

    package, forbidden = sys.argv[1], set(sys.argv[2:])
    importers = {}

    def ours(name):
        return name == package or name.startswith(package + ".")

    class Witness:
        def find_spec(self, fullname, path=None, target=None):
            top = fullname.split(".")[0]
            if top in forbidden and top not in importers:
                frame, via = sys._getframe(1), None
                while frame is not None and not ours(frame.f_globals.get("__name__", "")):
                    name = frame.f_globals.get("__name__", "")
                    if via is None and not name.startswith("importlib"):
                        via = name
                    frame = frame.f_back
                importers[top] = {"by": frame and frame.f_globals["__name__"], "via": via}
            return None

    def banned(names):
        return sorted({n.split(".")[0] for n in names if n.split(".")[0] in forbidden})

    offenders, errors, imported = [], {}, []

    def load(name):
        before = set(sys.modules)
        try:
            importlib.import_module(name)
        except Exception:
            errors[name] = traceback.format_exc(limit=3)
            return None
        imported.append(name)
        for top in banned(set(sys.modules) - before):
            offenders.append({"module": top, "sweep_step": name, "by": None, "via": None, **importers.get(top, {})})
        return sys.modules[name]

    at_start = banned(sys.modules)
    sys.meta_path.insert(0, Witness())
    root = load(package)
    if root is not None:
        for info in pkgutil.walk_packages(root.__path__, package + ".", onerror=lambda n: errors.setdefault(n, "walk")):
            load(info.name)
    print(json.dumps({"at_start": at_start, "offenders": offenders, "errors": errors, "imported": imported}))
    """
)


@dataclass(frozen=True)
class Offender:
    """A forbidden module that got loaded: which package module imported it (through which third-party module)."""

    module: str
    sweep_step: str  # the module the sweep was importing at the time
    by: str | None
    via: str | None

    def __str__(self) -> str:
        through = f" through {self.via}" if self.via and self.via != self.by else ""
        return f"{self.by} imports {self.module}{through} (while importing {self.sweep_step})"


@dataclass(frozen=True)
class ImportSweep:
    """What importing every module of one package in a fresh interpreter loaded."""

    at_start: list[str]
    offenders: list[Offender]
    errors: dict[str, str]
    imported: list[str]

    def explain(self) -> str:
        lines = [f"forbidden modules loaded at interpreter start: {self.at_start}"] if self.at_start else []
        return "\n".join([*lines, *(str(offender) for offender in self.offenders)])


def sweep(package: str, forbidden: tuple[str, ...]) -> ImportSweep:
    """Import all of `package` in a child interpreter, recording which modules brought in `forbidden` ones."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, package, *forbidden],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    data = json.loads(child.stdout.splitlines()[-1])
    return ImportSweep(
        data["at_start"], [Offender(**found) for found in data["offenders"]], data["errors"], data["imported"]
    )


def test_core_imports_no_torch_onnx_qt_desktop_or_trainer() -> None:
    result = sweep(
        "core", ("torch", "torchvision", "onnx", "safetensors", "PySide6", "shiboken6", "desktop", "trainer")
    )
    assert not result.errors, result.errors
    assert {"core", "core.cli", "core.search", "core.encoders", "core.tokenizers.wordpiece"} <= set(result.imported)
    assert not result.at_start and not result.offenders, result.explain()


def test_desktop_imports_no_torch_or_trainer() -> None:
    result = sweep("desktop", ("torch", "torchvision", "trainer"))
    assert not result.errors, result.errors
    assert {"desktop", "desktop.app", "desktop.main_window", "desktop.__main__"} <= set(result.imported)
    assert not result.at_start and not result.offenders, result.explain()
