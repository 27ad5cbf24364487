"""The search query language (core.query): parsing realistic search strings and combining query vectors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from core.errors import PhotoSeekError
from core.query import (
    MEDIAN_SAMPLE,
    SAMPLED_MEDIAN_MIN,
    ParsedQuery,
    QueryError,
    combine,
    demote,
    median,
    parse_query,
)
from core.scanning import scan


@pytest.fixture()
def cwd(tmp_path: Path) -> Path:
    return tmp_path.resolve()


def q(text: str, cwd: Path | None = None) -> ParsedQuery:
    return parse_query(text, cwd=cwd or Path("/nonexistent/cwd"))


# --- plain text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "positive"),
    [
        ("golden retriever on a beach", ("golden retriever on a beach",)),
        ("   dog   at \t night  ", ("dog at night",)),
        ('"red car" parked outside', ("red car parked outside",)),
        ("kid in a t-shirt, well-lit room", ("kid in a t-shirt, well-lit room",)),
        ("sunset - beach", ("sunset beach",)),  # a lone dash is punctuation, not an operator
        ("dog -", ("dog",)),
        ("- dog +", ("dog",)),
        ('"in:the box" cat', ("in:the box cat",)),  # quotes protect operator-looking text
        ('"-leash"', ("-leash",)),
        ('"red car', ("red car",)),  # an unclosed quote runs to the end
        ("\u201cred car\u201d at dusk", ("red car at dusk",)),  # curly quotes from phones / word processors
        ("foo:bar baz", ("foo:bar baz",)),  # an unknown key stays text
        ('note:"to self" here', ("note:to self here",)),
        ("http://example.com 12:30 ratio:16:9", ("http://example.com 12:30 ratio:16:9",)),
        ("Café au lait ☕", ("Café au lait ☕",)),
    ],
)
def test_plain_text_becomes_one_phrase(text: str, positive: tuple[str, ...]) -> None:
    parsed = q(text)
    assert parsed.positive == positive
    assert parsed.negative == () and parsed.photos == () and not parsed.has_filters


def test_empty_queries() -> None:
    for text in ("", "   ", "-", "+ -", '""'):
        parsed = q(text)
        assert parsed == ParsedQuery()
        assert parsed.is_empty and not parsed.has_vector_terms


# --- negatives and extra concepts ---------------------------------------------------------------


def test_negatives_words_and_quoted_phrases() -> None:
    parsed = q('dog on a beach -leash -"red car" -"  blue   sky "')
    assert parsed.positive == ("dog on a beach",)
    assert parsed.negative == ("leash", "red car", "blue sky")


def test_negative_applies_to_one_word_unless_quoted() -> None:
    parsed = q("-red car")
    assert parsed.negative == ("red",) and parsed.positive == ("car",)


def test_words_adjacent_to_quotes_are_separate_terms() -> None:
    assert q('"red car"-leash').negative == ("leash",)
    parsed = q('-"red car"beach')
    assert parsed.negative == ("red car",) and parsed.positive == ("beach",)
    parsed = q('tag:"golden retriever"beach')
    assert parsed.tags == ("golden retriever",) and parsed.positive == ("beach",)


def test_doubled_operator_and_unknown_key_negative() -> None:
    assert q("--leash").negative == ("leash",)
    assert q("-foo:bar").negative == ("foo:bar",)


def test_only_negatives_is_a_valid_query() -> None:
    parsed = q("-cat -dog")
    assert parsed.positive == () and parsed.negative == ("cat", "dog")
    assert parsed.has_vector_terms and not parsed.is_empty


def test_plus_text_adds_a_separate_concept() -> None:
    parsed = q('beach +sunset +"golden hour"')
    assert parsed.positive == ("beach", "sunset", "golden hour")
    assert parsed.photos == ()


# --- photos (query arithmetic) ------------------------------------------------------------------


def test_photo_paths_resolve_against_cwd(cwd: Path) -> None:
    parsed = parse_query("+./ref.jpg +../up/b.PNG +IMG_0001.JPG +/abs/c.webp +sub/d.gif", cwd=cwd / "here")
    assert parsed.photos == (
        cwd / "here" / "ref.jpg",
        cwd / "up" / "b.PNG",
        cwd / "here" / "IMG_0001.JPG",
        Path("/abs/c.webp"),
        cwd / "here" / "sub" / "d.gif",
    )
    assert parsed.positive == ()


def test_photo_path_with_spaces_and_home(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(cwd / "home"))
    parsed = parse_query('cat +"My Photos/ref 1.jpg" +~/x.png -dog', cwd=cwd)
    assert parsed.photos == (cwd / "My Photos" / "ref 1.jpg", cwd / "home" / "x.png")
    assert parsed.positive == ("cat",) and parsed.negative == ("dog",)


def test_default_cwd_is_the_process_working_directory(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cwd)
    assert parse_query("+ref.jpg").photos == (cwd / "ref.jpg",)


# --- filters -------------------------------------------------------------------------------------


def test_tags_are_collected_once_each() -> None:
    parsed = q('tag:dog TAG:"golden retriever" beach tag:dog Tag:Puppy')
    assert parsed.tags == ("dog", "golden retriever", "Puppy")
    assert parsed.positive == ("beach",)
    assert parsed.has_filters and parsed.has_vector_terms


def test_folder_filter(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(cwd / "home"))
    assert parse_query("in:~/Pictures/2023 dog", cwd=cwd).folder == cwd / "home" / "Pictures" / "2023"
    assert parse_query('folder:"Camera Roll/2024"', cwd=cwd).folder == cwd / "Camera Roll" / "2024"
    assert parse_query("in:.", cwd=cwd).folder == cwd
    assert parse_query("IN:/mnt/photos/", cwd=cwd).folder == Path("/mnt/photos")


def test_folder_filter_matches_the_paths_the_scanner_stores(cwd: Path) -> None:
    real = cwd / "real" / "2023"
    real.mkdir(parents=True)
    (real / "a.jpg").write_bytes(b"x")
    (cwd / "link").symlink_to(cwd / "real", target_is_directory=True)
    folder = parse_query("in:link/2023", cwd=cwd).folder
    stored = [p.path for p in scan([cwd / "link" / "2023"])]
    assert stored and all(p.startswith(str(folder) + "/") for p in stored)


def test_camera_filter_keeps_the_text() -> None:
    assert q("camera:pixel").camera == "pixel"
    assert q('camera:"Canon EOS R5" bird').camera == "Canon EOS R5"


@pytest.mark.parametrize(
    ("text", "date_from", "date_to"),
    [
        ("after:2023-01", date(2023, 1, 1), None),
        ("from:2023-01-05", date(2023, 1, 5), None),
        ("after:2023", date(2023, 1, 1), None),
        ("before:2024", None, date(2024, 1, 1)),  # before: excludes the whole named period
        ("before:2024-03", None, date(2024, 3, 1)),
        ("before:2024-03-10", None, date(2024, 3, 10)),
        ("to:2024-02-29", None, date(2024, 3, 1)),  # to: includes the whole named period (leap day)
        ("to:2023-12", None, date(2024, 1, 1)),
        ("to:2023-12-31", None, date(2024, 1, 1)),
        ("to:2023", None, date(2024, 1, 1)),
        ("year:2021", date(2021, 1, 1), date(2022, 1, 1)),
        ("year:2021 after:2021-06 before:2021-09", date(2021, 6, 1), date(2021, 9, 1)),
        ("after:2020 from:2021-03 to:2022 before:2021-12", date(2021, 3, 1), date(2021, 12, 1)),
        ("from:2023-1-5", date(2023, 1, 5), None),
        ("after:2023-12-31 before:2024", date(2023, 12, 31), date(2024, 1, 1)),
    ],
)
def test_dates(text: str, date_from: date | None, date_to: date | None) -> None:
    parsed = q(text)
    assert (parsed.date_from, parsed.date_to) == (date_from, date_to)
    assert parsed.positive == () and parsed.has_filters


def test_everything_together(cwd: Path) -> None:
    parsed = parse_query(
        'dog playing in snow -leash +./ref.jpg tag:pets in:"Family/2021" year:2021 camera:pixel', cwd=cwd
    )
    assert parsed == ParsedQuery(
        positive=("dog playing in snow",),
        negative=("leash",),
        photos=(cwd / "ref.jpg",),
        tags=("pets",),
        folder=cwd / "Family" / "2021",
        date_from=date(2021, 1, 1),
        date_to=date(2022, 1, 1),
        camera="pixel",
    )


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("after:2023-13", "month 13"),
        ("to:2023-02-29", "not a valid date"),  # 2023 is not a leap year
        ("from:2023-04-31", "not a valid date"),
        ("before:23", "YYYY, YYYY-MM or YYYY-MM-DD"),
        ("after:2023/01", "YYYY, YYYY-MM or YYYY-MM-DD"),
        ("after:yesterday", "YYYY, YYYY-MM or YYYY-MM-DD"),
        ("year:2021-05", "four-digit year"),
        ("from:0000", "out of range"),
        ("after:9999", "out of range"),
        ("after:2024 before:2024", "leave no days"),
        ("year:2021 year:2022", "leave no days"),
        ("tag:", "needs a value"),
        ('tag:""', "needs a value"),
        ("camera: pixel", "needs a value"),
        ("-tag:dog", "filters cannot take '-'"),
        ("+in:~/x", "filters cannot take '+'"),
        ("in:a in:b", "only one folder"),
        ("camera:a camera:b", "only one camera"),
    ],
)
def test_errors_are_query_errors_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace("+", r"\+")) as info:
        q(f"dog {text}")
    assert isinstance(info.value, PhotoSeekError)


def test_error_message_quotes_the_offending_term() -> None:
    with pytest.raises(QueryError) as info:
        q("beach after:2023-02-30 sunset")
    assert "'after:2023-02-30'" in str(info.value)


# --- combine ---------------------------------------------------------------------------------------


def unit(rng: np.random.Generator, k: int, dim: int = 512) -> np.ndarray:
    v = rng.standard_normal((k, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


NONE = np.zeros((0, 512), np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_combine_is_unit_length_and_follows_the_documented_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos, pho = unit(rng, 2), unit(rng, 1)
    out = combine(pos, pho)
    assert out.shape == (512,) and out.dtype == np.float32
    assert abs(float(np.linalg.norm(out)) - 1.0) < 1e-5
    expected = pos.sum(0) + pho.sum(0)
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected), atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_photo_arithmetic_moves_the_query_toward_the_photo(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos, pho = unit(rng, 1), unit(rng, 1)
    out = combine(pos, pho)
    assert float(out @ pho[0]) > float(pos[0] @ pho[0]) + 0.3
    assert float(out @ pos[0]) > 0.5  # halfway, not replaced
    assert float(out @ pho[0]) == pytest.approx(float(out @ pos[0]), abs=1e-5)


def test_demote_lowers_only_photos_that_match_the_negative_more_than_usual() -> None:
    scores = np.array([0.5, 0.6, 0.4, 0.3], dtype=np.float32)
    negative = np.array([[0.2, 0.7, 0.25, 0.2]], dtype=np.float32)  # photo 1 is the "leash" photo
    out = demote(scores, negative)
    assert int(np.argmax(out)) == 0  # the best photo without the negative wins
    assert out[1] < scores[1] and out[0] == scores[0] and out[3] == scores[3]
    assert np.all(demote(scores, negative, weight=2.0) <= out)


@pytest.mark.parametrize("count", [9, SAMPLED_MEDIAN_MIN - 1, SAMPLED_MEDIAN_MIN, 100_001, 300_000])
@pytest.mark.parametrize("kind", ["scores", "sorted", "ties", "constant", "strided outliers", "nan"])
def test_median_is_numpys_to_the_bit(count: int, kind: str) -> None:
    values = (np.random.default_rng(count).standard_normal(count) * 0.1).astype(np.float32)
    if kind == "sorted":
        values.sort()
    elif kind == "ties":
        values = np.round(values, 2)
    elif kind == "constant":
        values[:] = 0.25
    elif kind == "strided outliers":  # every sampled value is an outlier: the sample's bracket misses the middle
        values[:: max(1, count // MEDIAN_SAMPLE)] = 5.0
    elif kind == "nan":
        values[count // 2] = np.nan
    expected = np.median(values)
    assert median(values).dtype == expected.dtype
    np.testing.assert_array_equal(median(values), expected)  # NaN equals NaN here


def test_demote_measures_the_excess_from_each_terms_median() -> None:
    rng = np.random.default_rng(11)
    scores = rng.standard_normal(SAMPLED_MEDIAN_MIN * 2).astype(np.float32)
    negatives = (rng.standard_normal((2, len(scores))) * 0.1 + [[0.1], [0.3]]).astype(np.float32)
    excess = np.clip(negatives - np.median(negatives, axis=1, keepdims=True), 0.0, None)
    np.testing.assert_array_equal(demote(scores, negatives), scores - excess.sum(axis=0))


def test_only_negatives_ranks_by_least_similar() -> None:
    rng = np.random.default_rng(7)
    neg = unit(rng, 1)
    photos = unit(rng, 200)
    out = demote(np.zeros(200, np.float32), (photos @ neg[0])[None, :])
    assert out[int(np.argmax(photos @ neg[0]))] == out.min()


def test_inputs_may_be_single_vectors_or_unnormalised() -> None:
    rng = np.random.default_rng(3)
    pos = unit(rng, 1)
    np.testing.assert_allclose(combine(pos[0] * 3.0, np.zeros(0)), combine(pos, NONE), atol=1e-6)


def test_combine_errors() -> None:
    rng = np.random.default_rng(0)
    a = unit(rng, 1)
    with pytest.raises(QueryError, match="nothing to search"):
        combine(NONE, NONE)
    with pytest.raises(QueryError, match="cancel"):
        combine(a, -a)
    with pytest.raises(ValueError, match="different sizes"):
        combine(a, unit(rng, 1, dim=256))
    with pytest.raises(ValueError, match="shape"):
        combine(np.zeros((1, 2, 3)), NONE)
