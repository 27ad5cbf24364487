"""XMP sidecars that carry PhotoSeek's tags, merged into whatever a sidecar already holds.

Tag scheme written (readable by digiKam, darktable, Lightroom and exiftool):

* ``dc:subject`` (rdf:Bag): one flat keyword per tag, user and model tags alike. A hierarchical tag
  contributes its leaf ("Family|Anna" -> "Anna").
* ``lr:hierarchicalSubject`` (rdf:Bag): user tags exactly as the user wrote them ("beach", "Family|Anna";
  "|" separates levels, as in Lightroom). Model tags go under the reserved root "PhotoSeek" ("PhotoSeek|dog"),
  so every program shows them grouped and PhotoSeek can find, refresh or remove them.
* ``photoseek:ModelSubjects`` (rdf:Bag, namespace `PHOTOSEEK_NS`): the dc:subject entries that the model
  added. A re-export removes those that the model no longer proposes, unless a user tag or another
  program's hierarchical keyword still names them; it never removes a subject it did not add.

User tags are additive: a re-export never removes a subject, only PhotoSeek's model entries. Everything else
in an existing sidecar (other namespaces, ratings, labels, edit histories, comments, the packet wrapper) is
kept as it was; new elements copy the file's indentation. Originals are never opened; sidecars are replaced
atomically, and a sidecar that does not parse as XMP raises `SidecarError` and is left untouched.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from core.errors import PhotoSeekError
from core.xml_writer import write_element

SIDECAR_STYLES = ("ext-appended", "ext-replaced")  # photo.jpg.xmp (darktable, digiKam) / photo.xmp (Lightroom)
MODEL_ROOT = "PhotoSeek"  # reserved top level of lr:hierarchicalSubject for model tags
PHOTOSEEK_NS = "http://ns.photoseek.app/xmp/1.0/"

X_NS = "adobe:ns:meta/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC_NS = "http://purl.org/dc/elements/1.1/"
LR_NS = "http://ns.adobe.com/lightroom/1.0/"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_PREFIXES = {X_NS: "x", RDF_NS: "rdf", DC_NS: "dc", LR_NS: "lr", PHOTOSEEK_NS: "photoseek"}

_DESCRIPTION, _LI, _VALUE = f"{{{RDF_NS}}}Description", f"{{{RDF_NS}}}li", f"{{{RDF_NS}}}value"
_CONTAINERS = tuple(f"{{{RDF_NS}}}{name}" for name in ("Bag", "Seq", "Alt"))
_SUBJECT, _HIERARCHICAL = f"{{{DC_NS}}}subject", f"{{{LR_NS}}}hierarchicalSubject"
_MODEL_SUBJECTS = f"{{{PHOTOSEEK_NS}}}ModelSubjects"
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NEW_PACKET_HEAD = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_NEW_PACKET_TAIL = '\n<?xpacket end="w"?>\n'


class SidecarError(PhotoSeekError):
    """An existing XMP sidecar cannot be read or merged; it is left as it was."""


def sidecar_path(photo: Path, style: str = "ext-appended") -> Path:
    """The sidecar of `photo`: "ext-appended" gives photo.jpg.xmp, "ext-replaced" gives photo.xmp.

    With "ext-replaced", photos that differ only by extension (IMG_1.CR2, IMG_1.JPG) share one sidecar.
    """
    photo = Path(photo)
    if style not in SIDECAR_STYLES:
        raise ValueError(f"unknown sidecar style {style!r}; expected one of {', '.join(SIDECAR_STYLES)}")
    if photo.suffix.lower() == ".xmp":
        raise ValueError(f"{photo} is itself an XMP file, not a photo")
    return photo.with_name(photo.name + ".xmp") if style == "ext-appended" else photo.with_suffix(".xmp")


def read_subjects(sidecar: Path) -> tuple[list[str], list[str]]:
    """The (dc:subject, lr:hierarchicalSubject) entries of a sidecar, in file order.

    Raises FileNotFoundError when it is missing and SidecarError when it is not valid XMP.
    """
    doc = _parse(Path(sidecar).read_bytes(), Path(sidecar))
    return _values(doc, _SUBJECT), _values(doc, _HIERARCHICAL)


def write_tags(photo: Path, user_tags: Sequence[str], model_tags: Sequence[str], style: str = "ext-appended") -> Path:
    """Write the photo's tags into its sidecar (created or merged, see the module doc) and return its path.

    Tags are stripped; "|" separates hierarchy levels. Empty tags, empty levels or characters that XML
    cannot hold raise ValueError. The photo itself is never opened; a sidecar whose tags already match is
    not rewritten, and with no tags and no sidecar, none is created.
    """
    photo = Path(photo)
    target = sidecar_path(photo, style)
    if not photo.is_file():
        raise FileNotFoundError(f"photo not found: {photo}")
    users, models = _clean_tags(user_tags), _clean_tags(model_tags)
    if target.is_symlink():
        target = target.resolve()  # keep the link, update the file it points to
    existing = target.read_bytes() if target.exists() else None
    doc = _parse(existing, target) if existing is not None else _new_document()

    old_subjects, old_hier, old_model = (_values(doc, tag) for tag in (_SUBJECT, _HIERARCHICAL, _MODEL_SUBJECTS))
    foreign_hier = [h for h in old_hier if h != MODEL_ROOT and not h.startswith(MODEL_ROOT + "|")]
    new_hier = _unique(foreign_hier + users + [f"{MODEL_ROOT}|{tag}" for tag in models])
    user_leaves, model_leaves = [_leaf(t) for t in users], [_leaf(t) for t in models]
    # A subject the model added earlier survives only while something else still names it.
    claimed = set(user_leaves) | set(model_leaves) | {part for h in foreign_hier for part in h.split("|")}
    kept = [s for s in old_subjects if s not in old_model or s in claimed]
    new_subjects = _unique(kept + user_leaves + model_leaves)
    not_ours = {s for s in old_subjects if s not in old_model} | set(user_leaves)
    new_model = _unique([s for s in model_leaves if s not in not_ours])

    wanted = {_SUBJECT: new_subjects, _HIERARCHICAL: new_hier, _MODEL_SUBJECTS: new_model}
    current = {_SUBJECT: old_subjects, _HIERARCHICAL: old_hier, _MODEL_SUBJECTS: old_model}
    if wanted == current:  # nothing to change, or nothing to write into a sidecar that does not exist
        return target
    for tag, values in wanted.items():
        _set_array(doc, tag, values)
    _atomic_write(target, doc.serialize().encode("utf-8"))
    return target


# --- tags ---------------------------------------------------------------------------------------------------


def _clean_tags(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str):
        raise TypeError("tags must be a sequence of strings, not one string")
    cleaned = []
    for tag in map(str, tags):
        parts = [part.strip() for part in tag.split("|")]
        if not all(parts) or _NOT_XML_CHAR.search(tag):
            raise ValueError(f"invalid tag {tag!r}: empty level or a character XML cannot hold")
        cleaned.append("|".join(parts))
    return _unique(cleaned)


def _leaf(tag: str) -> str:
    return tag.rsplit("|", 1)[-1]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


# --- parsing ------------------------------------------------------------------------------------------------


class _Builder(ET.TreeBuilder):
    """A tree builder that keeps comments and remembers which element declared which namespace prefixes."""

    def __init__(self) -> None:
        super().__init__(insert_comments=True, insert_pis=True)
        self.declarations: dict[ET.Element, list[tuple[str, str]]] = {}
        self._pending: list[tuple[str, str]] = []

    def start_ns(self, prefix: str, uri: str) -> None:
        self._pending.append((prefix or "", uri))

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        element = super().start(tag, attrs)
        if self._pending:
            self.declarations[element], self._pending = self._pending, []
        return element


@dataclass
class _Document:
    """A parsed sidecar: the element tree, where prefixes were declared, and the text around the root."""

    root: ET.Element
    declarations: dict[ET.Element, list[tuple[str, str]]] = field(default_factory=dict)
    prolog: str = _NEW_PACKET_HEAD
    epilog: str = _NEW_PACKET_TAIL

    @property
    def rdf(self) -> ET.Element:
        return self.root if self.root.tag == f"{{{RDF_NS}}}RDF" else self.root.find(f"{{{RDF_NS}}}RDF")

    def serialize(self) -> str:
        out: list[str] = []
        write_element(self.root, self.declarations, {"xml": XML_NS}, "", out, _PREFIXES)
        return self.prolog + "".join(out) + self.epilog


def _new_document() -> _Document:
    root = ET.Element(f"{{{X_NS}}}xmpmeta", {f"{{{X_NS}}}xmptk": "PhotoSeek"})
    rdf = ET.SubElement(root, f"{{{RDF_NS}}}RDF")
    description = ET.SubElement(rdf, _DESCRIPTION, {f"{{{RDF_NS}}}about": ""})
    root.text, rdf.text, description.text = "\n ", "\n  ", "\n  "
    description.tail, rdf.tail = "\n ", "\n"
    declarations = {root: [("x", X_NS)], rdf: [("rdf", RDF_NS)]}
    return _Document(root, declarations)


def _parse(data: bytes, path: Path) -> _Document:
    builder = _Builder()
    try:
        parser = DefusedXMLParser(target=builder, forbid_dtd=True)
        parser.feed(data)
        root = parser.close()
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise SidecarError(f"{path}: not well-formed XML ({exc}); the sidecar was left untouched") from exc
    if root.tag not in (f"{{{X_NS}}}xmpmeta", f"{{{X_NS}}}xapmeta", f"{{{RDF_NS}}}RDF"):
        raise SidecarError(f"{path}: root element {root.tag} is not XMP; the sidecar was left untouched")
    doc = _Document(root, builder.declarations)
    if doc.rdf is None:
        raise SidecarError(f"{path}: no rdf:RDF element; the sidecar was left untouched")
    doc.prolog, doc.epilog = _outside_root(data)
    for tag in (_SUBJECT, _HIERARCHICAL, _MODEL_SUBJECTS):
        try:
            _values(doc, tag)
        except SidecarError as exc:
            raise SidecarError(f"{path}: {exc}; the sidecar was left untouched") from None
    return doc


def _outside_root(data: bytes) -> tuple[str, str]:
    """The text before and after the root element (packet wrapper, comments), with the XML declaration
    replaced by a UTF-8 one since the rewrite is UTF-8."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return "", ""
    pos = 0
    while True:  # skip the prolog's processing instructions, comments and blanks
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        closer = "?>" if text.startswith("<?", pos) else "-->" if text.startswith("<!--", pos) else None
        if closer is None:
            break
        pos = text.index(closer, pos) + len(closer)
    prolog = re.sub(r"^<\?xml\s[^>]*\?>", '<?xml version="1.0" encoding="UTF-8"?>', text[:pos])
    root_name = re.match(r"<([^\s/>]+)", text[pos:])
    end = text.rfind(f"</{root_name.group(1)}") if root_name else -1
    return prolog, text[text.index(">", end) + 1 :] if end >= 0 else ""


# --- reading and editing arrays -------------------------------------------------------------------------------


def _find_array(doc: _Document, tag: str) -> tuple[ET.Element, ET.Element, ET.Element] | None:
    """The (rdf:Description, property, container) holding the array property `tag`, if present."""
    found = None
    for description in doc.rdf.findall(_DESCRIPTION):
        if tag in description.attrib:
            raise SidecarError(f"{_short(tag)} is a simple value, expected an rdf:Bag")
        for prop in description.findall(tag):
            containers = [child for child in prop if child.tag in _CONTAINERS]
            if found is not None or len(containers) != 1:
                raise SidecarError(f"{_short(tag)} is repeated or does not hold one rdf:Bag/Seq/Alt")
            found = (description, prop, containers[0])
    return found


def _li_value(item: ET.Element) -> str:
    value = item.get(_VALUE)
    if value is None:
        child = item.find(_VALUE)
        value = child.text if child is not None else item.text
    return value or ""


def _values(doc: _Document, tag: str) -> list[str]:
    found = _find_array(doc, tag)
    return [_li_value(item) for item in found[2] if item.tag == _LI] if found else []


def _set_array(doc: _Document, tag: str, values: list[str]) -> None:
    """Make the array `tag` hold `values`: keep the matching rdf:li elements, drop the rest, append new ones."""
    found = _find_array(doc, tag)
    if found is None and not values:
        return
    if found is None:
        description = _home_description(doc)
        _declare(doc, description, tag)
        prop = ET.Element(tag)
        container = ET.SubElement(prop, _CONTAINERS[0])
        indent = _indent(description, "\n   ")
        prop.text, container.tail = indent + " ", indent
        _append(description, prop, indent)
    else:
        description, prop, container = found
    if not values:
        _remove(description, prop)
        return
    present = set()
    for item in [child for child in container if child.tag == _LI]:
        value = _li_value(item)
        if value in values and value not in present:
            present.add(value)
        else:
            _remove(container, item)
    item_indent = _indent(container, _indent(prop, _indent(description, "\n   ") + " ") + " ")
    for value in values:
        if value not in present:
            item = ET.Element(_LI)
            item.text = value
            _append(container, item, item_indent)


def _home_description(doc: _Document) -> ET.Element:
    """Where new properties go: the description already holding subjects, else the first one."""
    for tag in (_SUBJECT, _HIERARCHICAL, _MODEL_SUBJECTS):
        found = _find_array(doc, tag)
        if found:
            return found[0]
    descriptions = doc.rdf.findall(_DESCRIPTION)
    if descriptions:
        return descriptions[0]
    description = ET.Element(_DESCRIPTION, {f"{{{RDF_NS}}}about": ""})
    _append(doc.rdf, description, _indent(doc.rdf, "\n  "))
    return description


def _declare(doc: _Document, description: ET.Element, tag: str) -> None:
    """Declare the namespace of `tag` on `description` unless it (or its ancestors) already do."""
    uri = tag[1:].split("}", 1)[0]
    in_scope: dict[str, str] = {}
    for element in (doc.root, doc.rdf, description):
        in_scope.update(doc.declarations.get(element, []))
    if uri in in_scope.values():
        return
    prefix, n = _PREFIXES.get(uri, "ns"), 1
    while (prefix if n == 1 else f"{prefix}{n}") in in_scope:
        n += 1
    doc.declarations.setdefault(description, []).append((prefix if n == 1 else f"{prefix}{n}", uri))


def _indent(element: ET.Element, fallback: str) -> str:
    """The line break and indentation that precede `element`'s children."""
    text = element.text if len(element) else None
    return text if text and not text.strip() and "\n" in text else fallback


def _append(parent: ET.Element, child: ET.Element, child_indent: str) -> None:
    if len(parent):
        child.tail, parent[-1].tail = parent[-1].tail, child_indent
    else:
        parent.text, child.tail = child_indent, child_indent[:-1] if child_indent.endswith(" ") else child_indent
    parent.append(child)


def _remove(parent: ET.Element, child: ET.Element) -> None:
    index = list(parent).index(child)
    if index == len(parent) - 1 and index > 0:
        parent[index - 1].tail = child.tail  # the closing tag keeps its indentation
    parent.remove(child)


def _short(tag: str) -> str:
    uri, local = tag[1:].split("}", 1)
    return f"{_PREFIXES.get(uri, uri)}:{local}"


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` by `data` through a temporary file in the same folder, keeping the old permissions."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
