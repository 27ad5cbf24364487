"""Search inside the running app: one open Library answering query after query, as the desktop's search box does.

    python bench/in_app_search.py --library DIR [--repeat 5] [--top 500]

For a library built by ``bench/library_scale.py build`` (its photos live under /photos/<year>/...), prints the
median wall time of each kind of query (plain text, a negative term, a folder, year + camera), best ``--top`` as the
desktop asks, after one warm-up query; browsing the whole library (the ids newest first and the first page of paths,
as the grid reads them); then the plain query's breakdown: the text embedded, the pass over the matrix,
and the rest (filters, top-k and reading the hits). Whole-process times are ``bench/library_scale.py run``'s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.library import Library  # noqa: E402
from core.search import SearchRequest  # noqa: E402


def _median_ms(library: Library, request: SearchRequest, repeat: int) -> tuple[float, int]:
    times, hits = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        hits = len(library.search(request).hits)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, hits


def _breakdown(library: Library, text: str, repeat: int) -> dict[str, float]:
    """Median ms of the text embedding and of the pass over the matrix alone, for the plain query."""
    engine = library.search_engine()
    embed, scan = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        vector = library.model().embed_texts([text])
        embed.append(time.perf_counter() - started)
        started = time.perf_counter()
        engine.vectors.scores(vector)
        scan.append(time.perf_counter() - started)
    return {"text embedded": statistics.median(embed) * 1000, "pass over the matrix": statistics.median(scan) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--top", type=int, default=500)
    args = parser.parse_args()
    library = Library(args.library)
    folder = sorted(f.path for f in library.folders())[0]
    queries = {
        "plain text": "a dog on a beach",
        "a negative term": "a dog on a beach -leash",
        "a folder": f'a dog on a beach in:"{folder}/2015"',
        "year + camera": "a dog on a beach year:2015 camera:canon",
    }
    print(f"{args.library}: {library.photo_count():,} photos, cpus={os.cpu_count()}, top {args.top}")
    library.search(SearchRequest("warm up", top=args.top))
    for name, text in queries.items():
        ms, hits = _median_ms(library, SearchRequest(text, top=args.top, every_filter_match=True), args.repeat)
        print(f"  {name:<16} {ms:7.1f} ms  ({hits} hits)")
    started = time.perf_counter()
    order = library.browse()
    library.paths_by_id(order.ids[:256])
    browse_ms = (time.perf_counter() - started) * 1000
    print(f"  browse all       {browse_ms:7.1f} ms  ({len(order.ids):,} ids newest first + the first page of paths)")
    parts = _breakdown(library, queries["plain text"], args.repeat)
    plain, _ = _median_ms(library, SearchRequest(queries["plain text"], top=args.top), args.repeat)
    rest = plain - sum(parts.values())
    print(
        "  plain text, broken down: " + ", ".join(f"{k} {v:.1f} ms" for k, v in parts.items()) + f", rest {rest:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
