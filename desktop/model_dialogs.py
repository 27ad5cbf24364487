"""The Models window's questions: the licence notice before a download, removing a model, activating a new one,
and choosing a checkpoint file or a model package (all modal, all answered by the user)."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from desktop.model_jobs import APPLE_WEIGHTS_LICENCE, APPLE_WEIGHTS_LICENCE_URL, Offer


def _ask(parent: QWidget, name: str, title: str, text: str, detail: str, yes: str, no: str = "Cancel") -> bool:
    box = QMessageBox(parent)
    box.setObjectName(name)
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle(title)
    box.setTextFormat(Qt.RichText)
    box.setText(text)
    box.setInformativeText(detail)
    box.setTextInteractionFlags(Qt.TextBrowserInteraction)  # the links open in the browser
    accept = box.addButton(yes, QMessageBox.AcceptRole)
    box.setDefaultButton(box.addButton(no, QMessageBox.RejectRole))
    box.exec()
    return box.clickedButton() is accept


def accept_apple_licence(parent: QWidget, offer: Offer) -> bool:
    """Say whose weights these are and under which licence, before anything is downloaded; True if accepted."""
    url, terms = html.escape(offer.url), html.escape(APPLE_WEIGHTS_LICENCE_URL)
    text = f"<b>{html.escape(offer.display)}'s weights are Apple's, not PhotoSeek's.</b>"
    detail = (
        f"PhotoSeek downloads them from Apple:<br><a href='{url}'>{url}</a><br><br>"
        f"They come under <b>Apple's licence</b> for them, the {APPLE_WEIGHTS_LICENCE} "
        f"(<a href='{terms}'>{terms}</a>), not under PhotoSeek's MIT licence. Those terms govern how you may use "
        "the model and share the package made from it; please read them.<br><br>"
        "Choose “Accept and download” only if you accept Apple's terms."
    )
    return _ask(parent, "licenceNotice", "Apple's licence", text, detail, "Accept and download")


def confirm_remove_model(parent: QWidget, name: str, model_id: str) -> bool:
    """Ask before deleting a model package and its embeddings."""
    text = f"Remove the model “{html.escape(name)}” ({html.escape(model_id)})?"
    detail = (
        "Its package and its embeddings of your photos are deleted. Your photos and tags stay. "
        "To use the model again, install it again and let it embed the library."
    )
    return _ask(parent, "confirmRemoveModel", "Remove model", text, detail, "Remove")


def offer_activation(parent: QWidget, name: str) -> bool:
    """After an install: make the new model active now? (It then embeds the library in the background.)"""
    text = f"“{html.escape(name)}” is installed."
    detail = (
        "Make it the active model now? PhotoSeek then embeds your photos with it in the background; search keeps "
        "answering with the current model until that is done."
    )
    return _ask(parent, "offerActivation", "Model installed", text, detail, "Activate", "Later")


def choose_checkpoint_file(parent: QWidget) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(
        parent,
        "Import a MobileCLIP checkpoint",
        str(Path.home()),
        "MobileCLIP checkpoints (*.pt *.pth *.safetensors);;All files (*)",
    )
    return Path(path) if path else None


def choose_package(parent: QWidget, zipped: bool) -> Path | None:
    if zipped:
        path, _ = QFileDialog.getOpenFileName(
            parent, "Install a model package (.zip)", str(Path.home()), "Model package (*.zip)"
        )
    else:
        path = QFileDialog.getExistingDirectory(parent, "Install a model package (its folder)", str(Path.home()))
    return Path(path) if path else None
