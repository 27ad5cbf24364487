"""Augmentation sampling and replay (trainer/reinforce/augment.py): DataCompDR's paug.json form, torchvision's
RandomResizedCrop/RandAugment rules (checked against the numbers in docs/mobileclip-spec.md §9.2) and exact replay."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from core.model_card import ViewSpec
from core.preprocess import resize_view
from tests.photo_corpus import load_photo
from trainer.reinforce.augment import (
    OP_NAMES,
    AugmentConfig,
    AugmentError,
    AugParams,
    apply_op,
    apply_params,
    magnitude_table,
    normalize,
    sample_crop,
    sample_params,
    sample_rng,
)

CONFIG = AugmentConfig()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return load_photo("chelsea_cat", max_side=200)


def test_magnitudes_match_datacompdr_numbers() -> None:
    """docs/mobileclip-spec.md §9.2: magnitude bin 9 of 31 gives 0.09 shear, 30.45 px translation at 224,
    0.27 brightness, 178.5 solarize."""
    table = magnitude_table(224, 31)
    assert table["ShearX"][9] == pytest.approx(0.09, abs=1e-6)
    assert table["TranslateX"][9] == pytest.approx(150 / 331 * 224 * 9 / 30, abs=1e-4)
    assert table["TranslateX"][9] == pytest.approx(30.45, abs=0.01)
    assert table["Brightness"][9] == pytest.approx(0.27, abs=1e-6)
    assert table["Solarize"][9] == pytest.approx(178.5, abs=1e-4)
    assert table["Rotate"][9] == pytest.approx(9.0, abs=1e-5)
    assert table["Posterize"][9] == 7.0  # 8 - round(9 / 7.5)
    assert OP_NAMES.index("Solarize") == 11 and len(OP_NAMES) == 14


def test_crops_follow_random_resized_crop_rules() -> None:
    rng = np.random.default_rng(1)
    width, height = 640, 480
    for _ in range(500):
        top, left, h, w = sample_crop(width, height, rng, CONFIG)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
        area = h * w / (width * height)
        assert 0.08 - 0.01 <= area <= 1.0
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02


def test_extreme_aspect_falls_back_to_a_centre_crop() -> None:
    """A 1000x10 strip fits no 3/4..4/3 crop of 8-100% area: torchvision's fallback is a centred 4/3 box."""
    top, left, h, w = sample_crop(1000, 10, np.random.default_rng(0), CONFIG)
    assert (h, w) == (10, round(10 * 4 / 3))
    assert (top, left) == (0, (1000 - w) // 2)


def test_ops_cover_every_op_and_both_signs() -> None:
    rng = np.random.default_rng(2)
    seen, signs = set(), {1: 0, -1: 0}
    for _ in range(600):
        ops = sample_params(300, 200, rng, CONFIG).ops
        assert ops is not None and len(ops) == 2
        for index, magnitude in ops:
            seen.add(index)
            if OP_NAMES[index] == "ShearX":
                signs[int(math.copysign(1, magnitude))] += 1
    assert seen == set(range(14))
    assert signs[1] > 20 and signs[-1] > 20


def test_rand_augment_probability_gives_null_entries() -> None:
    rng = np.random.default_rng(3)
    config = AugmentConfig(rand_augment_p=0.5)
    entries = [sample_params(300, 200, rng, config).to_json() for _ in range(200)]
    skipped = sum(entry[1] is None for entry in entries)
    assert 60 < skipped < 140
    assert all(entry[0] is not None for entry in entries)


def test_sampling_depends_only_on_seed_and_key() -> None:
    first = [sample_params(300, 200, sample_rng(0, "000001_000002", "augment"), CONFIG) for _ in range(3)]
    again = [sample_params(300, 200, sample_rng(0, "000001_000002", "augment"), CONFIG) for _ in range(3)]
    other = sample_params(300, 200, sample_rng(0, "000001_000003", "augment"), CONFIG)
    assert first == again
    assert other != first[0]


def test_params_json_round_trip_and_validation() -> None:
    params = AugParams((1, 2, 30, 40), ((3, -30.45), (11, 178.5)))
    assert params.to_json() == [[1, 2, 30, 40], [[3, -30.45], [11, 178.5]]]
    assert AugParams.from_json(params.to_json()) == params
    assert AugParams.from_json([[1, 2, 30, 40], None]) == AugParams((1, 2, 30, 40), None)
    assert AugParams.from_json(None) == AugParams(None, None)
    for bad in ([[1, 2, 3]], [[1, 2, 3, 4], [[14, 0.0]]], [[1, 2, 3, 4], [[1, "x"]]], [[-1, 0, 3, 4]], "x",
                [[0, 0, 4, 4], [[10, 1e9]]], [[0, 0, 4, 4], [[1, float("nan")]]]):  # fmt: skip
        with pytest.raises(AugmentError):
            AugParams.from_json(bad)


def test_translate_moves_pixels_and_fills_black(photo: Image.Image) -> None:
    view = photo.resize((64, 64))
    src = np.asarray(view)
    right = np.asarray(apply_op(view, OP_NAMES.index("TranslateX"), 10.7))  # int(10.7) = 10 pixels
    assert np.array_equal(right[:, 10:], src[:, :-10]) and not right[:, :10].any()
    up = np.asarray(apply_op(view, OP_NAMES.index("TranslateY"), -5.2))
    assert np.array_equal(up[:-5], src[5:]) and not up[-5:].any()


def test_pixel_ops_match_their_definitions(photo: Image.Image) -> None:
    view = photo.resize((48, 48))
    src = np.asarray(view).astype(int)
    solarized = np.asarray(apply_op(view, OP_NAMES.index("Solarize"), 178.5)).astype(int)
    assert np.array_equal(solarized, np.where(src >= 178.5, 255 - src, src))
    posterized = np.asarray(apply_op(view, OP_NAMES.index("Posterize"), 7.0)).astype(int)
    assert np.array_equal(posterized, src & 0xFE)
    assert np.array_equal(np.asarray(apply_op(view, 0, 0.0)), np.asarray(view))


def test_shear_x_keeps_the_top_row_and_shifts_lower_rows(photo: Image.Image) -> None:
    view = photo.resize((64, 64))
    src = np.asarray(view)
    sheared = np.asarray(apply_op(view, OP_NAMES.index("ShearX"), 0.09))
    assert np.array_equal(sheared[0], src[0])  # centre (0, 0): row 0 maps to itself
    y = 40  # output x samples input x + 0.09 * y (nearest, at pixel centres)
    x_in = np.floor(np.arange(64) + 0.5 + 0.09 * (y + 0.5)).astype(int)
    inside = x_in < 64
    assert np.array_equal(sheared[y][inside], src[y][x_in[inside]])
    assert not sheared[y][~inside].any()


def test_replay_crop_is_in_original_pixels_at_any_resolution(photo: Image.Image) -> None:
    whole = AugParams((0, 0, photo.height, photo.width), None)
    for size in (64, 96):
        expected = photo.resize((size, size), Image.Resampling.BICUBIC)
        assert np.array_equal(np.asarray(apply_params(photo, whole, size, "bicubic")), np.asarray(expected))
    box = AugParams((10, 20, 50, 60), None)
    small = apply_params(photo, box, 32, "bilinear")
    assert np.array_equal(np.asarray(small), np.asarray(photo.crop((20, 10, 80, 60)).resize((32, 32), Image.BILINEAR)))


def test_null_crop_is_the_centre_view_core_uses(photo: Image.Image) -> None:
    view = apply_params(photo, AugParams(None, None), 72, "bilinear")
    expected = resize_view(photo, 72, ViewSpec("shortest", 1.0), "bilinear")
    assert np.array_equal(np.asarray(view), np.asarray(expected))


def test_crop_outside_the_image_is_refused(photo: Image.Image) -> None:
    with pytest.raises(AugmentError, match="outside"):
        apply_params(photo, AugParams((0, 0, photo.height + 1, 10), None), 32)


def test_normalize_matches_core_formula(photo: Image.Image) -> None:
    view = photo.resize((16, 16))
    out = normalize(view, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    expected = np.asarray(view, dtype=np.float64).transpose(2, 0, 1) / 255 - np.array([0.5, 0.4, 0.3])[:, None, None]
    expected /= np.array([0.2, 0.25, 0.5])[:, None, None]
    assert out.dtype == np.float32 and out.shape == (3, 16, 16)
    assert np.allclose(out, expected, atol=1e-5)
