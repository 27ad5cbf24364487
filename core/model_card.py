"""The model package contract: `model_card.json` beside the ONNX encoders and tokenizer files.

A model package is a folder. Its card says everything core needs to run the model (preprocessing,
tokenizer, ONNX input/output names) and everything a user needs to trust it (file hashes, provenance,
licence, measured parity and metrics). The trainer writes packages; core only reads them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelPackageError
from core.model_card_types import Architecture, Provenance, parse_architecture, parse_provenance

CARD_FILE = "model_card.json"
FORMAT_VERSION = 1
RESIZE_MODES = ("shortest", "squash")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")
TOKENIZER_KINDS = ("clip-bpe", "wordpiece")
MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
IMAGE_KEY_PREFIX = "image:"  # never a model id (no ':' allowed there), so a store keyed by a model id stays apart


@dataclass(frozen=True)
class ViewSpec:
    """One view of an image fed to the image encoder; a package's views' outputs are averaged.

    `shortest`: resize the shorter side to floor(size / crop_fraction), then centre-crop size x size.
    `squash`: resize the whole image to size x size, ignoring its aspect ratio.
    """

    resize: str = "shortest"
    crop_fraction: float = 1.0


@dataclass(frozen=True)
class PreprocessSpec:
    """Image preprocessing: pixels become float32 (value / 255 - mean) / std, CHW, RGB."""

    size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    views: tuple[ViewSpec, ...] = (ViewSpec(),)


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer turns text into the text encoder's inputs, and its files inside the package."""

    kind: str
    files: dict[str, str]
    context_length: int = 77
    lowercase: bool = True


@dataclass(frozen=True)
class EncoderSpec:
    """One ONNX encoder: its file, the names of the inputs it takes and of the output to read."""

    file: str
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class ImageCheckSpec:
    """A fast (e.g. int8) image encoder's check on the CPU that runs it (see `core.image_check`).

    `views` is an npz of uint8 views and the exact graph's embeddings of them; when the fast encoder's embedding of
    any view falls below `min_cosine` to them, core runs `fallback` (the exact graph, same inputs and output).
    """

    views: str
    fallback: EncoderSpec
    min_cosine: float


@dataclass(frozen=True)
class TaggingSpec:
    """How the model's tags are chosen, measured for this model (core.tagging): a tag's z-score across the
    vocabulary must reach `min_z` (plus the user's offset for it), and a photo gets at most `max_tags` tags."""

    min_z: float
    max_tags: int


@dataclass(frozen=True)
class CutoffSpec:
    """Where a query's matches stop, measured for this model (core.cutoff): a photo is a match when its score is
    within `gap` (cosine) of the best photo's and its score, as a z-score against that photo's own similarities to
    a bank of generic captions, reaches `min_photo_z`."""

    gap: float
    min_photo_z: float


@dataclass(frozen=True)
class SharedImageSpec:
    """A text-only fine-tune's statement that its image side is its base's, byte for byte, so photos embedded by
    one serve the other. Core trusts the statement only as far as it checks it: `image_key` must be the key of this
    card's own image files (see `image_key`), whose hashes `verify_files` checks against the files."""

    model: str  # the base model's id, for people and lineage
    image_key: str  # the base's image key when the fine-tune was made


@dataclass(frozen=True)
class ModelCard:
    """The parsed `model_card.json` of a model package."""

    id: str
    name: str
    architecture: Architecture  # typed by family (core.model_card_types)
    embedding_dim: int
    preprocess: PreprocessSpec
    tokenizer: TokenizerSpec
    image_encoder: EncoderSpec
    text_encoder: EncoderSpec
    files: dict[str, str]
    license: dict[str, Any]
    provenance: Provenance = field(default_factory=Provenance)  # typed by builder (core.model_card_types)
    parity: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    query_template: str = "{}"
    image_check: ImageCheckSpec | None = None
    tagging: TaggingSpec | None = None  # None: core.tagging's defaults (cards before it had none)
    cutoff: CutoffSpec | None = None  # None: core.cutoff's defaults (cards before it had none)
    shares_image_of: SharedImageSpec | None = None  # None: not declared (older cards may still share; see image_key)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The card as the JSON object written to `model_card.json`."""
        data = asdict(self)
        data["architecture"] = self.architecture.to_json()
        data["provenance"] = self.provenance.to_json()
        data["preprocess"]["views"] = [asdict(v) for v in self.preprocess.views]
        return data


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ModelPackageError(f"{where}: model card has no '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelPackageError(f"{where}: '{key}' in the model card has the wrong type ({type(value).__name__})")
    return value


def _parse_preprocess(data: dict[str, Any], where: str) -> PreprocessSpec:
    size = _require(data, "size", int, where)
    interpolation = _require(data, "interpolation", str, where)
    if interpolation not in INTERPOLATIONS:
        raise ModelPackageError(
            f"{where}: unknown interpolation '{interpolation}' (known: {', '.join(INTERPOLATIONS)})"
        )
    mean = tuple(float(v) for v in _require(data, "mean", list, where))
    std = tuple(float(v) for v in _require(data, "std", list, where))
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ModelPackageError(f"{where}: mean and std must be three numbers, std positive")
    views = []
    for view in data.get("views", [{}]):
        resize = view.get("resize", "shortest")
        crop_fraction = float(view.get("crop_fraction", 1.0))
        if resize not in RESIZE_MODES or not 0.0 < crop_fraction <= 1.0:
            raise ModelPackageError(f"{where}: bad view {view!r}")
        views.append(ViewSpec(resize, crop_fraction))
    if not views or size < 8:
        raise ModelPackageError(f"{where}: preprocessing needs at least one view and a size of at least 8")
    return PreprocessSpec(size, interpolation, mean, std, tuple(views))  # type: ignore[arg-type]


def _parse_encoder(data: dict[str, Any], where: str) -> EncoderSpec:
    inputs = _require(data, "inputs", list, where)
    return EncoderSpec(
        _require(data, "file", str, where), tuple(str(i) for i in inputs), _require(data, "output", str, where)
    )


def _parse_image_check(data: Any, image_encoder: EncoderSpec, where: str) -> ImageCheckSpec | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ModelPackageError(f"{where}: 'image_check' in the model card must be an object")
    fallback = _parse_encoder(_require(data, "fallback", dict, where), where)
    min_cosine = float(_require(data, "min_cosine", (int, float), where))
    if (fallback.inputs, fallback.output) != (image_encoder.inputs, image_encoder.output) or not 0 < min_cosine <= 1:
        raise ModelPackageError(
            f"{where}: the image check's fallback must take the image encoder's inputs and output, with a min_cosine "
            "in (0, 1]"
        )
    return ImageCheckSpec(_require(data, "views", str, where), fallback, min_cosine)


def _optional_object(data: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    """An optional card field that must be a JSON object when present (None when absent or null)."""
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise ModelPackageError(f"{where}: '{key}' in the model card must be an object")
    return value


def _parse_tagging(data: dict[str, Any] | None, where: str) -> TaggingSpec | None:
    if data is None:
        return None
    min_z = float(_require(data, "min_z", (int, float), where))
    max_tags = _require(data, "max_tags", int, where)
    if not 0 < min_z <= 10 or not 1 <= max_tags <= 50:
        raise ModelPackageError(f"{where}: tagging needs 0 < min_z <= 10 and 1 <= max_tags <= 50")
    return TaggingSpec(min_z, max_tags)


def _parse_cutoff(data: dict[str, Any] | None, where: str) -> CutoffSpec | None:
    if data is None:
        return None
    gap = float(_require(data, "gap", (int, float), where))
    min_photo_z = float(_require(data, "min_photo_z", (int, float), where))
    if not 0 < gap <= 2 or not -10 <= min_photo_z <= 10:
        raise ModelPackageError(f"{where}: cutoff needs 0 < gap <= 2 and -10 <= min_photo_z <= 10")
    return CutoffSpec(gap, min_photo_z)


def _parse_shared_image(data: dict[str, Any] | None, where: str) -> SharedImageSpec | None:
    if data is None:
        return None
    model = _require(data, "model", str, where)
    key = _require(data, "image_key", str, where)
    if not key.startswith(IMAGE_KEY_PREFIX) or not MODEL_ID_PATTERN.match(model):
        raise ModelPackageError(f"{where}: 'shares_image_of' needs a model id and an image key ({IMAGE_KEY_PREFIX}…)")
    return SharedImageSpec(model, key)


def is_text_side_file(card: ModelCard, name: str) -> bool:
    """Whether a package file can only affect text embeddings: the text encoder and its external data, tokenizer
    files, the licence, and training state (safetensors, never run). Any other file may feed the image encoder."""
    text = card.text_encoder.file
    text_side = {text, *card.tokenizer.files.values(), str(card.license.get("file", ""))}
    return name in text_side or name.startswith(f"{text}.") or name.endswith(".safetensors")


def image_side_files(card: ModelCard) -> list[str]:
    """The card's files that may feed the image encoder (its graphs, their external data, the check views)."""
    return sorted(name for name in card.files if not is_text_side_file(card, name))


def image_key(card: ModelCard) -> str:
    """What a photo's embedding depends on, as one key: the names and sha256 of every file but the text side's
    (the image graphs, their external data, the check views), the encoders' input and output names, the image
    check, preprocessing and embedding width. Two models with the same key embed every photo identically, so they
    share one store of photo embeddings; a file core cannot place counts as image side, so it can only keep two
    models apart.

    Built from the card's file hashes: they are what `verify_files` checks, so a key is only as true as a verified
    package (core loads no unverified one)."""
    needed = [card.image_encoder.file]
    check = None
    if card.image_check is not None:
        needed += [card.image_check.views, card.image_check.fallback.file]
        fallback = card.image_check.fallback
        check = [fallback.inputs, fallback.output, card.image_check.min_cosine]
    missing = [name for name in needed if name not in card.files]
    if missing:
        raise ModelPackageError(f"model '{card.id}': the card has no hash for {', '.join(missing)}")
    described = {
        "files": [[name, card.files[name]] for name in image_side_files(card)],
        "encoder": [card.image_encoder.file, card.image_encoder.inputs, card.image_encoder.output],
        "check": check,
        "preprocess": asdict(card.preprocess),
        "dim": card.embedding_dim,
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return IMAGE_KEY_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def _check_shared_image(card: ModelCard, where: str) -> ModelCard:
    """Refuse a card whose statement of sharing its base's image side does not hold for its own files."""
    claim = card.shares_image_of
    if claim is not None and card.files and image_key(card) != claim.image_key:
        raise ModelPackageError(
            f"{where}: the card says its image side is model '{claim.model}'s, but its image files or preprocessing "
            "differ from it; the package was modified or damaged"
        )
    return card


def parse_card(data: Any, where: str = "model_card.json") -> ModelCard:
    """Validate a card's JSON object and return it typed; raise ModelPackageError naming what is wrong."""
    if not isinstance(data, dict):
        raise ModelPackageError(f"{where}: the model card is not a JSON object")
    version = _require(data, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise ModelPackageError(
            f"{where}: model card format {version} is not supported (this PhotoSeek reads {FORMAT_VERSION})"
        )
    model_id = _require(data, "id", str, where)
    if not MODEL_ID_PATTERN.match(model_id):
        raise ModelPackageError(f"{where}: model id '{model_id}' must be lower-case letters, digits, '.', '_' or '-'")
    tokenizer = _require(data, "tokenizer", dict, where)
    kind = _require(tokenizer, "kind", str, where)
    if kind not in TOKENIZER_KINDS:
        raise ModelPackageError(f"{where}: unknown tokenizer kind '{kind}' (known: {', '.join(TOKENIZER_KINDS)})")
    files = _require(data, "files", dict, where)
    for name, digest in files.items():
        if Path(name).name != name or not isinstance(digest, str) or len(digest) != 64:
            raise ModelPackageError(f"{where}: bad file entry {name!r} (plain file names with sha256 hex digests only)")
    image_encoder = _parse_encoder(_require(data, "image_encoder", dict, where), where)
    query_template = data.get("query_template", "{}")
    if not isinstance(query_template, str) or query_template.count("{}") != 1:
        raise ModelPackageError(f"{where}: query_template must contain exactly one '{{}}'")
    card = ModelCard(
        id=model_id,
        name=_require(data, "name", str, where),
        architecture=parse_architecture(_require(data, "architecture", dict, where), where),
        embedding_dim=_require(data, "embedding_dim", int, where),
        preprocess=_parse_preprocess(_require(data, "preprocess", dict, where), where),
        tokenizer=TokenizerSpec(
            kind=kind,
            files={str(k): str(v) for k, v in _require(tokenizer, "files", dict, where).items()},
            context_length=int(tokenizer.get("context_length", 77)),
            lowercase=bool(tokenizer.get("lowercase", True)),
        ),
        image_encoder=image_encoder,
        text_encoder=_parse_encoder(_require(data, "text_encoder", dict, where), where),
        files=dict(files),
        license=_require(data, "license", dict, where),
        provenance=parse_provenance(_optional_object(data, "provenance", where) or {}, where),
        parity=data.get("parity", {}),
        metrics=data.get("metrics", {}),
        query_template=query_template,
        image_check=_parse_image_check(data.get("image_check"), image_encoder, where),
        tagging=_parse_tagging(_optional_object(data, "tagging", where), where),
        cutoff=_parse_cutoff(_optional_object(data, "cutoff", where), where),
        shares_image_of=_parse_shared_image(_optional_object(data, "shares_image_of", where), where),
        format_version=version,
    )
    return _check_shared_image(card, where)


def read_card(package_dir: Path) -> ModelCard:
    """Read and validate `model_card.json` in a package folder (hashes are not checked here)."""
    card_path = package_dir / CARD_FILE
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelPackageError(f"{package_dir}: not a model package (no {CARD_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{card_path}: cannot read the model card: {exc}") from exc
    return parse_card(data, str(card_path))


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(package_dir: Path, card: ModelCard) -> None:
    """Check that every file the card lists exists and has the recorded sha256; refuse the package if not."""
    needed = {card.image_encoder.file, card.text_encoder.file, *card.tokenizer.files.values()}
    if card.image_check is not None:
        needed |= {card.image_check.views, card.image_check.fallback.file}
    unlisted = sorted(needed - set(card.files))
    if unlisted:
        raise ModelPackageError(f"{package_dir}: the card has no hash for {', '.join(unlisted)}")
    for name, expected in card.files.items():
        path = package_dir / name
        if not path.is_file():
            raise ModelPackageError(f"{package_dir}: missing file {name}")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelPackageError(
                f"{path}: sha256 mismatch (card {expected[:12]}…, file {actual[:12]}…): the package was modified "
                "or damaged; reinstall it"
            )


def write_card(package_dir: Path, card: ModelCard) -> Path:
    """Write `model_card.json` (used by the trainer when it builds a package)."""
    path = package_dir / CARD_FILE
    path.write_text(json.dumps(card.to_json(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
