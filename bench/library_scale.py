"""PhotoSeek at 1k to 1M photos, timed as the user waits: whole processes, with peak memory.

    python bench/library_scale.py build --photos 1000000 --library /tmp/lib-1m [--package DIR]
    python bench/library_scale.py run /tmp/lib-1k /tmp/lib-10k /tmp/lib-100k /tmp/lib-1m

`build` writes a synthetic library through the indexer's own write path (`PhotoIndex.save_batch`, then tagging
each batch as indexing does): random unit embeddings, realistic folder and file names, dates and cameras. It
prints how fast the writes go as the library grows (photos/s at the start, middle and end). The model package
(default: the starter the tests build, `.cache/test-models/starter`) is copied into the library so search can
embed text.

`run` times, per library, the whole process of `python -m core search ... --json --top 20`, `similar` and
`stats`, and the app from launch to the first search result in its grid (bench/app_first_result.py), each as the median
of `--repeat` runs with the peak RSS and CPU time of the process; then the ratio of each to the first (smallest)
library, and the index size per photo beyond the vectors. `--index-photos` also indexes the real-photo corpus
(tests/photo_corpus.py) into each library as a whole process and forgets it again, to show that indexing keeps
its speed as the library grows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.encoders import ModelPackage  # noqa: E402
from core.index_db import DB_FILE, PhotoIndex, PhotoRecord  # noqa: E402
from core.metadata import PhotoMeta  # noqa: E402
from core.model_store import ModelStore  # noqa: E402
from core.tagging import Tagger  # noqa: E402

CAMERAS = [
    "Apple iPhone 13",
    "Apple iPhone 15 Pro",
    "Google Pixel 7",
    "samsung SM-S911B",
    "Canon EOS R6",
    "NIKON Z 6_2",
    "SONY ILCE-7M3",
    "FUJIFILM X-T4",
    "OLYMPUS E-M10",
    "Canon EOS 5D Mark IV",
    None,
]
EVENTS = ["beach", "birthday", "hiking", "garden", "wedding", "snow trip", "city walk", "family", "zoo", "concert"]
QUERIES = ["a dog on a beach", "sunset over the sea", "people at a birthday party"]
BATCH = 2000
SECONDS_PER_YEAR = 365.25 * 86400


def _records(rng: np.random.Generator, start: int, count: int, root: str) -> list[PhotoRecord]:
    """Photos as a phone and a few cameras would leave them: year/event folders, IMG_ names, dates, cameras."""
    taken = 1.1e9 + rng.random(count) * 20 * SECONDS_PER_YEAR
    cameras = rng.integers(0, len(CAMERAS), count)
    records = []
    for i in range(count):
        n = start + i
        year = 2005 + int((taken[i] - 1.1e9) // SECONDS_PER_YEAR)
        folder = f"{root}/{year}/{year}-{n // 400 % 12 + 1:02d} {EVENTS[n // 400 % len(EVENTS)]}"
        camera = CAMERAS[cameras[i]]
        records.append(
            PhotoRecord(
                f"{folder}/IMG_{n:07d}.jpg",
                int(rng.integers(800_000, 9_000_000)),
                int(taken[i] * 1e9),
                rng.bytes(16).hex(),
                PhotoMeta(4032, 3024, None if camera is None else float(taken[i]), camera),
            )
        )
    return records


def _install_package(library: Path, package: Path) -> ModelPackage:
    store = ModelStore(library)
    target = store.install_dir / package.name
    if not target.exists():
        shutil.copytree(package, target)
    return ModelPackage(target)


def build(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    library = args.library.expanduser()
    model = _install_package(library, args.package)
    rng = np.random.default_rng(args.seed)
    root = "/photos/library"
    rates: list[tuple[int, float]] = []
    with PhotoIndex(library) as index, tqdm(total=args.photos, unit="photo", desc="writing") as bar:
        index.add_folders([root])
        tagger = Tagger(index)
        done = index.photo_count()
        while done < args.photos:
            count = min(BATCH, args.photos - done)
            records = _records(rng, done, count, root)
            vectors = rng.standard_normal((count, model.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            started = time.perf_counter()
            ids = index.save_batch(model.id, records, vectors)
            tagger.tag_photos(model, ids, vectors)
            rates.append((done, count / (time.perf_counter() - started)))
            done += count
            bar.update(count)
    for label, at in (("start", 0), ("middle", args.photos // 2), ("end", args.photos - 1)):
        near = [rate for before, rate in rates if abs(before - at) <= max(BATCH * 5, args.photos // 50)]
        print(f"write rate at the {label} ({at:,} photos in): {statistics.median(near):,.0f} photos/s")
    print(f"library: {library} ({done:,} photos, model {model.id})")


@dataclass
class Timing:
    wall: float  # seconds from spawn to exit
    cpu: float  # user + system seconds of the process
    peak_mb: float  # peak resident set size
    marks: dict[str, float]  # name=seconds pairs the process printed (the app's milestones)


def _timed(command: list[str], env: dict[str, str]) -> Timing:
    """One whole process, measured by its own rusage (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(command[2:5])}... failed: {err.read()[-600:]!r}")
        out.seek(0)
        words = out.read().decode(errors="replace").split()
    marks = {k: float(v) for k, _, v in (w.partition("=") for w in words) if v and v.replace(".", "", 1).isdigit()}
    return Timing(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, marks)


def _median_run(command: list[str], env: dict[str, str], repeat: int) -> Timing:
    """Medians of `repeat` runs (the highest peak RSS); CPU time holds up on a busy machine, wall time does not."""
    runs = [_timed(command, env) for _ in range(repeat)]
    marks = {name: statistics.median(r.marks[name] for r in runs) for name in runs[0].marks}
    return Timing(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.peak_mb for r in runs),
        marks,
    )


def _index_bytes_per_photo(library: Path) -> tuple[int, float, float]:
    with PhotoIndex(library) as index:
        photos = index.photo_count()
    database = sum(p.stat().st_size for p in library.glob(f"{DB_FILE}*"))
    vectors = sum(p.stat().st_size for p in (library / "vectors").glob("*"))
    return photos, database / max(photos, 1), vectors / max(photos, 1)


def _index_rate(library: Path, photos: Path, env: dict[str, str]) -> tuple[float, float]:
    """Index a fresh copy of real photos into the library as a whole process, then forget them again: (photos/s
    inside the indexer, wall seconds of the process)."""
    from core.library import Library

    with tempfile.TemporaryDirectory(prefix="photoseek-scale-") as tmp:
        fresh = Path(tmp) / "new photos"
        shutil.copytree(photos, fresh)
        command = [sys.executable, "-m", "core", "index", str(fresh), "--json", "--library", str(library)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"index failed: {done.stderr[-600:]}")
        report = json.loads(done.stdout)
        Library(library).remove_folder(str(fresh.resolve()))
    return report["indexed"] / max(report["seconds"], 1e-9), wall


def run(args: argparse.Namespace) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PHOTOSEEK_HOME", None)
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} repeat={args.repeat}")
    table: list[tuple[str, int, dict[str, Timing]]] = []
    photo_folder, count_new = None, 0
    if args.index_photos:
        from tests.photo_corpus import materialize

        photo_folder = Path(tempfile.mkdtemp(prefix="photoseek-scale-photos-"))
        count_new = len(materialize(photo_folder))
    for library in args.libraries:
        photos, db_per_photo, vectors_per_photo = _index_bytes_per_photo(library)
        lib = ["--library", str(library)]
        with PhotoIndex(library) as index:
            some_photo = index.paths_of([index.photos_after(0)[0][0]])[0]
        commands = {
            f"search '{query}'": [sys.executable, "-m", "core", "search", query, "--json", "--top", "20", *lib]
            for query in args.queries
        }
        commands["similar"] = [sys.executable, "-m", "core", "similar", some_photo, "--json", "--top", "20", *lib]
        commands["stats"] = [sys.executable, "-m", "core", "stats", "--json", *lib]
        if not args.no_app:
            app = [sys.executable, str(REPO / "bench" / "app_first_result.py"), *lib, "--query", args.queries[0]]
            commands["app: start to first result"] = app
        _median_run(commands["stats"], env, 1)  # warm the OS file cache: we time PhotoSeek, not the disk
        results = {name: _median_run(command, env, args.repeat) for name, command in commands.items()}
        table.append((str(library), photos, results))
        print(f"\n{library}: {photos:,} photos; index {db_per_photo:,.0f} B/photo + vectors {vectors_per_photo:,.0f}")
        if photo_folder is not None:
            rate, wall = _index_rate(library, photo_folder, env)
            print(
                f"  index {count_new} new real photos: {rate:5.1f} photos/s in the indexer, {wall:.1f} s whole process"
            )
        for name, got in results.items():
            base = table[0][2][name]
            print(
                f"  {name:<30} {got.wall:6.2f} s wall {got.cpu:6.2f} s CPU {got.peak_mb:6.0f} MB peak RSS "
                f"({got.wall / base.wall:5.2f}x time, {got.peak_mb / base.peak_mb:4.2f}x memory of {table[0][1]:,} photos)"
            )
            if got.marks:
                print(
                    "      " + ", ".join(f"{mark.replace('_', ' ')} at {sec:.2f} s" for mark, sec in got.marks.items())
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="write a synthetic library through the indexer's write path")
    make.add_argument("--photos", type=int, required=True)
    make.add_argument("--library", type=Path, required=True)
    make.add_argument("--package", type=Path, default=REPO / ".cache" / "test-models" / "starter")
    make.add_argument("--seed", type=int, default=0)
    time_it = commands.add_parser("run", help="time whole processes on built libraries, smallest first")
    time_it.add_argument("libraries", type=Path, nargs="+")
    time_it.add_argument("--queries", nargs="+", default=QUERIES[:1])
    time_it.add_argument("--repeat", type=int, default=3)
    time_it.add_argument("--no-app", action="store_true", help="leave out the desktop app's start")
    time_it.add_argument(
        "--index-photos",
        action="store_true",
        help="also index the real-photo corpus into each library (then forget it)",
    )
    args = parser.parse_args()
    build(args) if args.command == "build" else run(args)


if __name__ == "__main__":
    main()
