"""Write model packages (the contract core reads): files, hashes, card, atomic install.

Used by the trainer (exports) and by core (torch-free checkpoint imports), so both install packages the same way.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from core.model_card import CARD_FILE, ModelCard, read_card, sha256_file, write_card


def staging_dir(install_root: Path, model_id: str) -> Path:
    """A fresh folder beside the final location to build a package in (same file system: atomic rename)."""
    install_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{model_id}.building-", dir=install_root))


def finalize_package(package_dir: Path, card: ModelCard) -> ModelCard:
    """Hash every file in the folder into the card, write `model_card.json`, and re-read it as a check."""
    files = {p.name: sha256_file(p) for p in sorted(package_dir.iterdir()) if p.is_file() and p.name != CARD_FILE}
    card = dataclasses.replace(card, files=files)
    write_card(package_dir, card)
    return read_card(package_dir)


def install_package(staged: Path, install_root: Path, model_id: str) -> Path:
    """Move a finished package into `install_root/model_id`, replacing an older one only once complete."""
    final = install_root / model_id
    old = None
    if final.exists():
        old = install_root / f".{model_id}.old-{os.getpid()}"
        os.replace(final, old)
    staged.chmod(0o755)  # mkdtemp makes it private; an installed package is readable like any app data
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
