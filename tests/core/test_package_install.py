"""Installing a model package made elsewhere (folder or .zip) into a library: checked first, all or nothing."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.errors import ModelPackageError
from core.library import Library
from core.model_card import read_card
from tests.support.tiny_model import build_tiny_package


def zip_folder(folder: Path, dest: Path, top: str | None = "pkg", extra: dict[str, bytes] | None = None) -> Path:
    """Zip a package folder's files (under the folder `top` inside the zip, or at its top), plus `extra` members."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{top}/{path.name}" if top else path.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return dest


def left_in(install_root: Path) -> list[str]:
    return sorted(p.name for p in install_root.iterdir()) if install_root.exists() else []


@pytest.fixture()
def lib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Library:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return Library(tmp_path / "library")


def test_installs_a_folder_and_a_zip_that_then_embed(lib: Library, tiny_package_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_package_dir, tmp_path / "made-elsewhere")
    (folder / "training-log.txt").write_text("not part of the package")  # not listed in the card: not copied
    installed = lib.install_package(folder)
    assert installed.id == "tiny" and installed.location == "library"
    assert sorted(p.name for p in installed.dir.iterdir()) == sorted(["model_card.json", *installed.card.files])
    assert lib.model("tiny").embed_texts(["a dog"]).shape == (1, 16)

    for top in ("pkg", None):  # a zip of the folder, or of its files
        model_id = f"zipped-{top or 'flat'}"
        zipped = zip_folder(build_tiny_package(tmp_path / model_id, model_id), tmp_path / f"{model_id}.zip", top)
        assert lib.install_package(zipped).id == model_id
        assert read_card(lib.store.install_dir / model_id).id == model_id
    assert left_in(lib.store.install_dir) == ["tiny", "zipped-flat", "zipped-pkg"]  # no staging folders left


def test_an_installed_id_is_not_replaced(lib: Library, tiny_package_dir: Path) -> None:
    lib.install_package(tiny_package_dir)
    with pytest.raises(ModelPackageError, match="'tiny' is installed already"):
        lib.install_package(tiny_package_dir)
    assert left_in(lib.store.install_dir) == ["tiny"]


def test_a_tampered_package_installs_nothing(lib: Library, tiny_package_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_package_dir, tmp_path / "tampered")
    with (folder / "vocab.txt").open("a") as vocab:
        vocab.write("extra\n")
    with pytest.raises(ModelPackageError, match="sha256 mismatch"):
        lib.install_package(folder)
    zipped = zip_folder(folder, tmp_path / "tampered.zip")
    with pytest.raises(ModelPackageError, match="sha256 mismatch"):
        lib.install_package(zipped)
    assert left_in(lib.store.install_dir) == []
    assert lib.installed_model_ids() == set()


def test_malformed_packages_are_refused(lib: Library, tiny_package_dir: Path, tmp_path: Path) -> None:
    no_card = tmp_path / "no-card.zip"
    with zipfile.ZipFile(no_card, "w") as archive:
        archive.writestr("pkg/vocab.txt", "a\n")
    with pytest.raises(ModelPackageError, match="not a model package zip"):
        lib.install_package(no_card)
    missing = shutil.copytree(tiny_package_dir, tmp_path / "missing")
    (missing / "text_encoder.onnx").unlink()
    with pytest.raises(ModelPackageError, match="missing file text_encoder.onnx"):
        lib.install_package(missing)
    not_a_package = tmp_path / "photo.jpg"
    not_a_package.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ModelPackageError, match="neither a model package folder nor a .zip"):
        lib.install_package(not_a_package)
    assert left_in(lib.store.install_dir) == []


@pytest.mark.parametrize("member", ["../evil.txt", "pkg/../../evil.txt", "/tmp/evil.txt"])
def test_a_zip_reaching_outside_its_folder_is_refused(
    lib: Library, tiny_package_dir: Path, tmp_path: Path, member: str
) -> None:
    zipped = zip_folder(tiny_package_dir, tmp_path / "evil.zip", extra={member: b"owned"})
    with pytest.raises(ModelPackageError, match="points outside its folder"):
        lib.install_package(zipped)
    assert left_in(lib.store.install_dir) == []
    assert not (tmp_path / "evil.txt").exists() and not (lib.path / "evil.txt").exists()


def test_a_zip_holding_a_link_is_refused(lib: Library, tiny_package_dir: Path, tmp_path: Path) -> None:
    zipped = zip_folder(tiny_package_dir, tmp_path / "link.zip")
    link = zipfile.ZipInfo("pkg/LICENSE.txt.link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(zipped, "a") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ModelPackageError, match="is a link"):
        lib.install_package(zipped)
    assert left_in(lib.store.install_dir) == []


def test_a_zip_larger_than_the_free_space_is_refused(
    lib: Library, tiny_package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zipped = zip_folder(tiny_package_dir, tmp_path / "big.zip")
    monkeypatch.setattr("core.package_install.shutil.disk_usage", lambda _path: SimpleNamespace(free=1000))
    with pytest.raises(ModelPackageError, match="unpacking needs .* bytes, 1,000 are free"):
        lib.install_package(zipped)
    assert left_in(lib.store.install_dir) == []
