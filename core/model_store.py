"""Find installed model packages and remember which one is active.

Packages are looked for, in this order (the first package with a given id wins):
the library's `models/`, the user's data folder `models/`, and the bundled `assets/models/`.
The active model id is stored in the library's `settings.json`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.encoders import ModelPackage
from core.errors import ModelPackageError, NoModelError, StarterBuildError
from core.model_card import CARD_FILE, IMAGE_KEY_PREFIX, ModelCard, image_key, read_card
from core.paths import assets_dir, user_data_dir

SETTINGS_FILE = "settings.json"
DEFAULT_MODEL_ID = "starter"
STDERR_TAIL_LINES = 40  # what is kept of the trainer's output to find why it failed
BUILD_STARTER_HINT = 'pip install -e ".[train]" && python -m trainer build-starter'


@dataclass(frozen=True)
class InstalledModel:
    """A package found on disk: its folder, its card, and which of the store's places holds it."""

    dir: Path
    card: ModelCard
    location: str

    @property
    def id(self) -> str:
        return self.card.id


class ModelStore:
    """The model packages visible to one library."""

    def __init__(self, library: Path) -> None:
        self.library = Path(library)
        self.install_dir = self.library / "models"
        places = [
            ("library", self.install_dir),
            ("user", user_data_dir() / "models"),
            ("bundled", assets_dir() / "models"),
        ]
        seen: set[Path] = set()
        self.places: list[tuple[str, Path]] = []
        for name, path in places:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                self.places.append((name, path))

    def list(self) -> list[InstalledModel]:
        """Every readable package, one per id. Broken packages are skipped here; `verify` reports them."""
        found: dict[str, InstalledModel] = {}
        for location, root in self.places:
            if not root.is_dir():
                continue
            for card_path in sorted(root.glob(f"*/{CARD_FILE}")):
                try:
                    card = read_card(card_path.parent)
                except ModelPackageError:
                    continue
                found.setdefault(card.id, InstalledModel(card_path.parent, card, location))
        return list(found.values())

    def find(self, model_id: str) -> InstalledModel:
        """The installed package with this id; ModelPackageError lists the ids there are otherwise."""
        for model in self.list():
            if model.id == model_id:
                return model
        known = ", ".join(m.id for m in self.list()) or "none"
        raise ModelPackageError(f"no model package '{model_id}' is installed (installed: {known})")

    def _settings_path(self) -> Path:
        return self.library / SETTINGS_FILE

    def _read_settings(self) -> dict:
        try:
            data = json.loads(self._settings_path().read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def active_id(self, installed: Iterable[str] | None = None) -> str:
        """The active model: the one chosen with `use`, else the starter, else the first installed (`installed`:
        the ids a caller already read, to spare reading every package's card again)."""
        models = set(installed) if installed is not None else {m.id for m in self.list()}
        if not models:
            raise NoModelError(f"no model package is installed. Build the starter model with: {BUILD_STARTER_HINT}")
        chosen = self._read_settings().get("active_model")
        if chosen in models:
            return chosen
        return DEFAULT_MODEL_ID if DEFAULT_MODEL_ID in models else sorted(models)[0]

    def read_setting(self, key: str) -> object:
        """One value of the library's settings.json (None when absent or unreadable)."""
        return self._read_settings().get(key)

    def write_setting(self, key: str, value: object) -> None:
        """Set one value in the library's settings.json, atomically."""
        settings = self._read_settings()
        settings[key] = value
        self.library.mkdir(parents=True, exist_ok=True)
        tmp = self._settings_path().with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self._settings_path())

    def set_active(self, model_id: str) -> None:
        """Make `model_id` the active model of this library (it must be installed)."""
        self.find(model_id)
        self.write_setting("active_model", model_id)

    def load(self, model_id: str | None = None, *, threads: int = 0) -> ModelPackage:
        """Load and verify a package (the active one by default)."""
        model = self.find(model_id or self.active_id())
        return ModelPackage(model.dir, threads=threads)


def image_keys(models: Iterable[InstalledModel]) -> dict[str, str]:
    """Each model's image key (the key of the store of photo embeddings it uses); a card that does not hash its
    image files has none (core refuses to load it anyway)."""
    keys = {}
    for model in models:
        try:
            keys[model.id] = image_key(model.card)
        except ModelPackageError:
            continue
    return keys


def embedding_counts(by_store: dict[str, int], models: Iterable[InstalledModel]) -> dict[str, int]:
    """Embedded photos per model from the counts per store: models sharing an image side show the same count; a
    schema-3 store not adopted yet shows under the model id it is kept under."""
    counts = {key: n for key, n in by_store.items() if not key.startswith(IMAGE_KEY_PREFIX)}
    for model_id, key in image_keys(models).items():
        if key in by_store:
            counts[model_id] = by_store[key]
    return counts


def trainer_available() -> bool:
    """Whether this environment can build models (the `train` extra is installed)."""
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("trainer") is not None


def build_starter(library: Path) -> None:
    """Build and install the starter package into `library` by running the trainer in a child process.

    core never imports the trainer (it needs torch); the child process keeps that boundary. Its output passes
    through to stderr as it comes; when it fails, StarterBuildError carries its last error line as the reason.
    """
    if not trainer_available():
        raise StarterBuildError(
            f"no model package is installed and the trainer is not available. Run: {BUILD_STARTER_HINT}",
            reason="the trainer (the `train` extra) is not installed",
        )
    command = [sys.executable, "-m", "trainer", "build-starter", "--library", str(library)]
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace") as child:
        for line in child.stderr:
            if sys.stderr is not None:  # None in a GUI process without a console (pythonw on Windows)
                sys.stderr.write(line)
            if line.strip():
                tail.append(line.strip())
    if child.returncode != 0:
        reason = _last_error(tail) or f"the trainer exited with code {child.returncode}"
        raise StarterBuildError(
            f"building the starter model failed ({reason}); run it by hand to see why: {' '.join(command)}",
            reason=reason,
        )


def _last_error(lines: deque[str]) -> str:
    """The line of a child's stderr that says what went wrong: a Python exception's last line, else the last one."""
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line) or line.lower().startswith("error"):
            return line
    return lines[-1] if lines else ""
