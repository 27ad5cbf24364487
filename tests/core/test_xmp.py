"""XMP sidecars: the tag scheme, merging into darktable/Lightroom/exiftool sidecars, safety, independent readers."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from core import xmp
from core.xmp import SidecarError, read_subjects, sidecar_path, write_tags

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
OURS = {f"{{{xmp.DC_NS}}}subject", f"{{{xmp.LR_NS}}}hierarchicalSubject", f"{{{xmp.PHOTOSEEK_NS}}}ModelSubjects"}
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed (libimage-exiftool-perl)")
OLD_TIME_NS = 1_500_000_000_000_000_000  # 2017: any rewrite would move the mtime away from it

DARKTABLE_STYLE = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
   exif:DateTimeOriginal="2024:06:01 12:00:00"
   xmp:Rating="3"
   xmpMM:DerivedFrom="IMG_0001.jpg"
   darktable:import_timestamp="63853466400000000"
   darktable:xmp_version="5"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="2"
   darktable:iop_order_version="2">
   <!-- a comment another program left -->
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="0000000000000000cdcccc3e0000c03f"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="11"
      darktable:blendop_params="gz11eJxjYIAAGQYYOOHEgAZY0QVwggZ7CB6pfOySAQA="/>
     <rdf:li darktable:num="1" darktable:operation="colorin" darktable:enabled="1" darktable:multi_name="caf\u00e9 &amp; cr\u00e8me"/>
    </rdf:Seq>
   </darktable:history>
   <darktable:colorlabels>
    <rdf:Seq>
     <rdf:li>0</rdf:li>
    </rdf:Seq>
   </darktable:colorlabels>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>darktable|format|jpg</rdf:li>
     <rdf:li>Trips|holiday</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>Trips/holiday</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

LIGHTROOM_STYLE = """<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000 1.000000, 0000/00/00-00:00:00        ">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
   xmp:Rating="4"
   xmp:Label="Green"
   xmp:ModifyDate="2024-06-01T12:00:00+02:00"
   tiff:Orientation="1"
   crs:Version="15.0"
   crs:WhiteBalance="As Shot"
   crs:Exposure2012="+0.35"
   crs:Look="line&#13;&#10;break&#9;tab &quot;quoted&quot; &lt;&amp;&gt;"
   xmpMM:DocumentID="xmp.did:0a1b2c3d"
   xmpMM:InstanceID="xmp.iid:4e5f6a7b">
   <crs:ToneCurvePV2012>
    <rdf:Seq>
     <rdf:li>0, 0</rdf:li>
     <rdf:li>255, 255</rdf:li>
    </rdf:Seq>
   </crs:ToneCurvePV2012>
   <xmpMM:History>
    <rdf:Seq>
     <rdf:li
      stEvt:action="saved"
      stEvt:instanceID="xmp.iid:4e5f6a7b"
      stEvt:when="2024-06-01T12:00:00+02:00"
      stEvt:softwareAgent="Adobe Photoshop Lightroom Classic 13.0 (Windows)"
      stEvt:changed="/metadata"/>
    </rdf:Seq>
   </xmpMM:History>
  </rdf:Description>
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
   <dc:title>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">Beach day</rdf:li>
    </rdf:Alt>
   </dc:title>
   <dc:description>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">carriage&#13;return, new
line &amp; &lt;markup&gt; été 🐕</rdf:li>
    </rdf:Alt>
   </dc:description>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>beach</rdf:li>
     <rdf:li>Places</rdf:li>
     <rdf:li>dog</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>Places|beach</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

STYLES = {"darktable": DARKTABLE_STYLE, "lightroom": LIGHTROOM_STYLE}


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A real JPEG whose mtime is set far in the past."""
    path = tmp_path / "IMG_0001.jpg"
    Image.new("RGB", (32, 24), (200, 120, 40)).save(path, quality=90)
    os.utime(path, ns=(OLD_TIME_NS, OLD_TIME_NS))
    return path


def _shape(element: ET.Element) -> tuple:
    """Everything in an element's XML content but its own tail: names, attributes, text, children, whitespace."""
    return (element.tag, dict(element.attrib), element.text, [(_shape(child), child.tail) for child in element])


def _foreign_parts(text: str) -> dict:
    """The parts of a sidecar that PhotoSeek must not change, parsed by the standard library."""
    root = ET.fromstring(text.encode("utf-8"))
    rdf = root.find(f"{{{RDF}}}RDF")
    descriptions = rdf.findall(f"{{{RDF}}}Description")
    return {
        "root": (root.tag, dict(root.attrib)),
        "rdf": dict(rdf.attrib),
        "descriptions": [
            (dict(d.attrib), [_shape(child) for child in d if child.tag not in OURS]) for d in descriptions
        ],
    }


def _exiftool(path: Path) -> dict:
    """What exiftool reads from a sidecar, without its file-system entries."""
    result = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-struct", "-a", str(path)], capture_output=True, text=True, check=True, timeout=60
    )
    tags = json.loads(result.stdout)[0]
    return {k: v for k, v in tags.items() if k != "SourceFile" and not k.startswith(("System:", "ExifTool:"))}


def _as_list(value: object) -> list[str]:
    """exiftool writes a one-item list as a bare value."""
    return [str(v) for v in value] if isinstance(value, list) else [] if value is None else [str(value)]


def test_sidecar_path_styles(tmp_path: Path) -> None:
    photo = tmp_path / "IMG_0001.CR2"
    assert sidecar_path(photo) == tmp_path / "IMG_0001.CR2.xmp"
    assert sidecar_path(photo, "ext-appended") == tmp_path / "IMG_0001.CR2.xmp"
    assert sidecar_path(photo, "ext-replaced") == tmp_path / "IMG_0001.xmp"
    with pytest.raises(ValueError, match="style"):
        sidecar_path(photo, "lightroom")
    with pytest.raises(ValueError, match="XMP"):
        sidecar_path(tmp_path / "IMG_0001.xmp")


@pytest.mark.parametrize("style", xmp.SIDECAR_STYLES)
def test_new_sidecar_has_exactly_the_tags(photo: Path, style: str) -> None:
    user = ["beach", " Family | Anna ", "rock & roll <live>", "beach"]
    model = ["dog", "sky", "golden retriever"]
    written = write_tags(photo, user, model, style=style)

    assert written == sidecar_path(photo, style) and written.is_file()
    subjects, hierarchical = read_subjects(written)
    assert subjects == ["beach", "Anna", "rock & roll <live>", "dog", "sky", "golden retriever"]
    assert hierarchical == [
        "beach",
        "Family|Anna",
        "rock & roll <live>",
        "PhotoSeek|dog",
        "PhotoSeek|sky",
        "PhotoSeek|golden retriever",
    ]
    root = ET.fromstring(written.read_bytes())
    bags = root.findall(f".//{{{xmp.PHOTOSEEK_NS}}}ModelSubjects/{{{RDF}}}Bag/{{{RDF}}}li")
    assert [li.text for li in bags] == ["dog", "sky", "golden retriever"]
    assert sorted(p.name for p in photo.parent.iterdir()) == sorted([photo.name, written.name])  # no temp files


def test_no_tags_creates_no_sidecar(photo: Path) -> None:
    assert not write_tags(photo, [], []).exists()


@pytest.mark.parametrize("bad", ["", "  ", "a||b", "|a", "bad\x00char", "bell\x07"])
def test_invalid_tags_are_refused(photo: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        write_tags(photo, [bad], [])
    with pytest.raises(ValueError):
        write_tags(photo, [], [bad])
    assert not sidecar_path(photo).exists()


def test_one_string_is_not_a_tag_list(photo: Path) -> None:
    with pytest.raises(TypeError):
        write_tags(photo, "beach", [])


def test_missing_photo_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_tags(tmp_path / "gone.jpg", ["a"], [])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(STYLES))
def test_merge_keeps_foreign_content(photo: Path, name: str) -> None:
    original = STYLES[name]
    sidecar = sidecar_path(photo)
    sidecar.write_text(original, encoding="utf-8")
    old_subjects, old_hierarchical = read_subjects(sidecar)

    write_tags(photo, ["Anna"], ["dog", "sky"])
    merged = sidecar.read_text(encoding="utf-8")

    assert _foreign_parts(merged) == _foreign_parts(original)
    for line in original.splitlines():  # every namespace keeps its prefix
        if "xmlns:" in line:
            assert line.strip().rstrip(">") in merged
    assert merged.startswith('<?xml version="1.0" encoding="UTF-8"?>') == original.startswith("<?xml")
    if name == "darktable":
        assert "<!-- a comment another program left -->" in merged
    subjects, hierarchical = read_subjects(sidecar)
    assert subjects[: len(old_subjects)] == old_subjects
    assert set(subjects) == set(old_subjects) | {"Anna", "dog", "sky"}
    assert hierarchical == old_hierarchical + ["Anna", "PhotoSeek|dog", "PhotoSeek|sky"]


def test_merge_keeps_the_packet_wrapper(photo: Path) -> None:
    padding = " " * 200 + "\n"
    original = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="5"/>'
        "</rdf:RDF></x:xmpmeta>\n" + padding + '<?xpacket end="w"?>'
    )
    sidecar = sidecar_path(photo)
    sidecar.write_bytes(original.encode("utf-8"))
    write_tags(photo, [], ["cat"])
    merged = sidecar.read_text(encoding="utf-8")
    assert merged.startswith('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta')
    assert merged.endswith("</x:xmpmeta>\n" + padding + '<?xpacket end="w"?>')
    assert _foreign_parts(merged) == _foreign_parts(original)
    assert read_subjects(sidecar) == (["cat"], ["PhotoSeek|cat"])


def test_reexport_replaces_model_tags_only(photo: Path) -> None:
    sidecar = sidecar_path(photo)
    sidecar.write_text(LIGHTROOM_STYLE, encoding="utf-8")  # "dog" is already a Lightroom keyword here
    write_tags(photo, ["Anna"], ["dog", "sky", "tree", "cloud"])
    assert read_subjects(sidecar)[0] == ["beach", "Places", "dog", "Anna", "sky", "tree", "cloud"]

    # Another program adds its own keywords: "sky" in a hierarchy, "cloud" as a plain hierarchical entry.
    text = sidecar.read_text(encoding="utf-8")
    text = text.replace("<rdf:li>Places|beach</rdf:li>", "<rdf:li>Places|beach</rdf:li><rdf:li>Nature|sky</rdf:li>")
    text = text.replace("<rdf:li>PhotoSeek|dog</rdf:li>", "<rdf:li>cloud</rdf:li><rdf:li>PhotoSeek|dog</rdf:li>")
    sidecar.write_text(text, encoding="utf-8")
    assert "Nature|sky" in read_subjects(sidecar)[1] and "cloud" in read_subjects(sidecar)[1]

    write_tags(photo, ["Anna"], ["cat"])
    subjects, hierarchical = read_subjects(sidecar)
    # dog: Lightroom's own keyword; sky and cloud: still named by another program; tree: only ever the model's.
    assert set(subjects) == {"beach", "Places", "dog", "Anna", "sky", "cloud", "cat"}
    assert set(hierarchical) == {"Places|beach", "Nature|sky", "Anna", "cloud", "PhotoSeek|cat"}

    write_tags(photo, ["Anna"], [])
    subjects, hierarchical = read_subjects(sidecar)
    assert set(subjects) == {"beach", "Places", "dog", "Anna", "sky", "cloud"}
    assert not any(h.startswith("PhotoSeek") for h in hierarchical)
    assert "ModelSubjects" not in sidecar.read_text(encoding="utf-8")
    assert (
        _foreign_parts(sidecar.read_text(encoding="utf-8"))["descriptions"][0]
        == (_foreign_parts(LIGHTROOM_STYLE)["descriptions"][0])
    )


def test_user_tag_equal_to_a_model_tag_survives_the_model(photo: Path) -> None:
    write_tags(photo, ["dog"], ["dog"])
    write_tags(photo, ["dog"], [])
    assert read_subjects(sidecar_path(photo)) == (["dog"], ["dog"])


def test_same_tags_do_not_rewrite(photo: Path) -> None:
    sidecar = write_tags(photo, ["beach"], ["dog"])
    os.utime(sidecar, ns=(OLD_TIME_NS, OLD_TIME_NS))
    before = sidecar.read_bytes()
    write_tags(photo, ["beach"], ["dog"])
    assert sidecar.read_bytes() == before and sidecar.stat().st_mtime_ns == OLD_TIME_NS


@pytest.mark.parametrize("style", xmp.SIDECAR_STYLES)
def test_original_photo_is_never_touched(photo: Path, style: str) -> None:
    before = photo.read_bytes()
    write_tags(photo, ["beach"], ["dog"], style=style)
    write_tags(photo, ["beach"], ["cat"], style=style)
    assert photo.read_bytes() == before and photo.stat().st_mtime_ns == OLD_TIME_NS


MALFORMED = {
    "empty": "",
    "truncated": DARKTABLE_STYLE[: len(DARKTABLE_STYLE) // 2],
    "not-xmp": "<html><body>not a sidecar</body></html>",
    "no-rdf": '<x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
    "entity-bomb": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>',
    "subject-as-text": DARKTABLE_STYLE.replace(
        "<dc:subject>\n    <rdf:Bag>\n     <rdf:li>holiday</rdf:li>\n    </rdf:Bag>\n   </dc:subject>",
        "<dc:subject>holiday</dc:subject>",
    ),
    "subject-as-attribute": LIGHTROOM_STYLE.replace('xmp:Rating="4"', 'xmp:Rating="4" dc:subject="beach"').replace(
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/"',
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"',
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_sidecar_is_an_error_and_kept(photo: Path, name: str) -> None:
    sidecar = sidecar_path(photo)
    sidecar.write_text(MALFORMED[name], encoding="utf-8")
    os.utime(sidecar, ns=(OLD_TIME_NS, OLD_TIME_NS))
    with pytest.raises(SidecarError, match="untouched"):
        write_tags(photo, ["beach"], ["dog"])
    with pytest.raises(SidecarError):
        read_subjects(sidecar)
    assert sidecar.read_text(encoding="utf-8") == MALFORMED[name]
    assert sidecar.stat().st_mtime_ns == OLD_TIME_NS
    assert sorted(p.name for p in photo.parent.iterdir()) == sorted([photo.name, sidecar.name])


def test_failed_replace_keeps_the_old_sidecar(photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sidecar = sidecar_path(photo)
    sidecar.write_text(DARKTABLE_STYLE, encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(xmp.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_tags(photo, ["beach"], ["dog"])
    assert sidecar.read_text(encoding="utf-8") == DARKTABLE_STYLE
    assert sorted(p.name for p in photo.parent.iterdir()) == sorted([photo.name, sidecar.name])


def test_pillow_reads_the_sidecar_embedded_in_a_jpeg(photo: Path) -> None:
    pytest.importorskip("defusedxml")  # Pillow's getxmp() needs it
    sidecar = write_tags(photo, ["beach", "Family|Anna"], ["dog"])
    buffer = io.BytesIO()
    Image.open(photo).save(buffer, "JPEG", xmp=sidecar.read_bytes())
    description = Image.open(buffer).getxmp()["xmpmeta"]["RDF"]["Description"]
    assert description["subject"]["Bag"]["li"] == ["beach", "Anna", "dog"]
    assert description["hierarchicalSubject"]["Bag"]["li"] == ["beach", "Family|Anna", "PhotoSeek|dog"]


@needs_exiftool
def test_exiftool_reads_new_sidecar(photo: Path) -> None:
    sidecar = write_tags(photo, ["caf\u00e9", "rock & roll <live>"], ["dog"], style="ext-replaced")
    tags = _exiftool(sidecar)
    assert _as_list(tags["XMP-dc:Subject"]) == ["caf\u00e9", "rock & roll <live>", "dog"]
    assert _as_list(tags["XMP-lr:HierarchicalSubject"]) == ["caf\u00e9", "rock & roll <live>", "PhotoSeek|dog"]
    assert _as_list(tags["XMP-photoseek:ModelSubjects"]) == ["dog"]
    check = subprocess.run([EXIFTOOL, "-validate", "-warning", "-a", "-s3", str(sidecar)], capture_output=True)
    assert check.stdout.decode().strip() == "OK"


@needs_exiftool
@pytest.mark.parametrize("name", sorted(STYLES) + ["exiftool"])
def test_exiftool_sees_every_foreign_field_unchanged(photo: Path, name: str) -> None:
    sidecar = sidecar_path(photo)
    if name == "exiftool":  # a sidecar written by a third-party program, with its own packet layout
        subprocess.run(
            [EXIFTOOL, "-q", "-o", str(sidecar), "-XMP-xmp:Rating=2", "-XMP-dc:Creator=Someone"]
            + ["-XMP-dc:Subject=kept", "-XMP-xmp:Label=Blue", "-XMP-dc:Description=caf\u00e9 & <tag>"],
            check=True,
            timeout=60,
        )
    else:
        sidecar.write_text(STYLES[name], encoding="utf-8")
    before = _exiftool(sidecar)
    write_tags(photo, ["Anna"], ["dog", "sky"])
    after = _exiftool(sidecar)

    ours = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-photoseek:ModelSubjects")
    assert {k: v for k, v in after.items() if k not in ours} == {k: v for k, v in before.items() if k not in ours}
    assert set(_as_list(after["XMP-dc:Subject"])) == set(_as_list(before.get("XMP-dc:Subject"))) | {
        "Anna",
        "dog",
        "sky",
    }
    new_hierarchical = _as_list(after["XMP-lr:HierarchicalSubject"])
    assert new_hierarchical == _as_list(before.get("XMP-lr:HierarchicalSubject")) + [
        "Anna",
        "PhotoSeek|dog",
        "PhotoSeek|sky",
    ]
    assert len(before) > 5  # the comparison above compared real content
