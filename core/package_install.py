"""Install a model package made elsewhere (a folder or a ``.zip`` of one, e.g. a fine-tune's output) into a library.

Only the card and the files it lists are taken; every file must have the sha256 the card records, the encoders must
load and give finite features, and the package lands under its card's id by an atomic rename, so a damaged,
tampered or malformed package installs nothing. A zip is read member by member: names that climb out of the folder
("../"), absolute names and links are refused before anything is written. No torch, no pickle.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from core.encoders import ModelPackage
from core.errors import ModelPackageError
from core.model_card import CARD_FILE, ModelCard, parse_card, read_card
from core.package_writer import install_package, staging_dir


def install_model_package(source: Path, install_root: Path, *, taken_ids: Iterable[str] = ()) -> Path:
    """Copy the package in folder or zip ``source`` into ``install_root/<id>`` after checking it; returns that folder.

    ``taken_ids``: ids already installed (a package with one of them is refused: remove the old one first). Raises
    ModelPackageError saying what is wrong; nothing is left behind then.
    """
    source = Path(source)
    if source.is_dir():
        card = read_card(source)
    elif zipfile.is_zipfile(source):
        card = None
    elif source.exists():
        raise ModelPackageError(f"{source}: neither a model package folder nor a .zip of one")
    else:
        raise ModelPackageError(f"{source}: no such file or folder")
    staged: Path | None = None
    try:
        if card is None:
            with zipfile.ZipFile(source) as archive:
                card, root = _zip_card(source, archive)
                _refuse_taken(card, taken_ids)
                staged = staging_dir(install_root, card.id)
                _extract(archive, root, [CARD_FILE, *card.files], staged)
        else:
            _refuse_taken(card, taken_ids)
            staged = staging_dir(install_root, card.id)
            for name in [CARD_FILE, *card.files]:
                _copy_member(source, name, staged)
        check_package_runs(staged)
        return install_package(staged, install_root, card.id)
    except BaseException:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        raise


def check_package_runs(package_dir: Path) -> ModelCard:
    """Verify the card and every file's hash, then embed a grey picture and a caption: finite, non-zero features."""
    package = ModelPackage(package_dir, verify=True, threads=1)
    try:
        image = package.embed_images([Image.new("RGB", (64, 48), (128, 128, 128))])
        text = package.embed_texts(["a photo of a dog"])
    except ModelPackageError:
        raise
    except Exception as exc:  # onnxruntime's own errors: a graph that does not load or run
        raise ModelPackageError(f"{package_dir}: the package's encoders do not run: {exc}") from exc
    for what, features in (("image", image), ("text", text)):
        if features.shape != (1, package.dim) or not np.isfinite(features).all() or not np.any(features):
            raise ModelPackageError(f"{package_dir}: the {what} encoder gives no usable features")
    return package.card


def _refuse_taken(card: ModelCard, taken_ids: Iterable[str]) -> None:
    if card.id in set(taken_ids):
        raise ModelPackageError(f"a model with id '{card.id}' is installed already; remove it first to replace it")


def _copy_member(folder: Path, name: str, staged: Path) -> None:
    if name in (".", ".."):
        raise ModelPackageError(f"{folder}: the card lists a bad file name {name!r}")
    path = folder / name
    if not path.is_file():
        raise ModelPackageError(f"{folder}: missing file {name}")
    shutil.copyfile(path, staged / name)


def _safe_name(source: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    """A member's name as a relative path; refuses absolute names, '..', drive letters and links."""
    name = PurePosixPath(info.filename.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or (name.parts and ":" in name.parts[0]):
        raise ModelPackageError(f"{source}: refused: the zip member {info.filename!r} points outside its folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ModelPackageError(f"{source}: refused: the zip member {info.filename!r} is a link")
    return name


def _zip_card(source: Path, archive: zipfile.ZipFile) -> tuple[ModelCard, PurePosixPath]:
    """The card of a zipped package and the folder inside the zip that holds it (the top or one sub-folder)."""
    names = [_safe_name(source, info) for info in archive.infolist()]  # checks every member before reading any
    cards = [name for name in names if name.name == CARD_FILE and len(name.parts) <= 2]
    if len(cards) != 1:
        raise ModelPackageError(
            f"{source}: not a model package zip ({CARD_FILE} must be at its top or in one folder at its top; "
            f"found {len(cards)})"
        )
    root = cards[0].parent
    try:
        data = json.loads(archive.read(cards[0].as_posix()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise ModelPackageError(f"{source}: cannot read its model card: {exc}") from exc
    return parse_card(data, f"{source}:{cards[0]}"), root


def _extract(archive: zipfile.ZipFile, root: PurePosixPath, names: list[str], staged: Path) -> None:
    """Copy the members ``root/name`` of ``names`` into ``staged`` (their own names, nothing else)."""
    members = {PurePosixPath(info.filename.replace("\\", "/")): info for info in archive.infolist()}
    wanted = []
    for name in names:
        info = members.get(root / name) if name not in (".", "..") else None
        if info is None or info.is_dir():
            raise ModelPackageError(f"{archive.filename}: missing file {name}")
        wanted.append((name, info))
    needed, free = sum(info.file_size for _, info in wanted), shutil.disk_usage(staged).free
    if needed > free:  # a member never unpacks past its stated size, so this also stops a zip bomb
        raise ModelPackageError(f"{archive.filename}: unpacking needs {needed:,} bytes, {free:,} are free")
    for name, info in wanted:
        try:
            with archive.open(info) as src, (staged / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, OSError) as exc:  # also a CRC error: a damaged zip
            raise ModelPackageError(f"{archive.filename}: cannot read {name} from the zip: {exc}") from exc
