"""What a text search costs inside the running desktop app (one warm LibraryService, the app's own door into core),
now that it stops at core's cutoff, against the request it made before (the best 500, no cutoff), and what each
"Show weaker matches" page adds.

    python bench/app_search_cutoff.py /tmp/lib-100k [--repeat 7]

Build the library first with `bench/library_scale.py build`. Per query: the median of `--repeat` searches after
one warm-up (which also computes and caches the photos' cutoff statistics), then each request's ratio to the old
one. Prints the CPU it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import cpu_name  # noqa: E402
from core.search import SearchRequest  # noqa: E402
from desktop.controller import WEAKER_PAGE  # noqa: E402
from desktop.library_service import LibraryService  # noqa: E402

QUERIES = ("a dog on a beach", "sunset over the sea", "people at a birthday party", "a dog -leash")


def median_ms(search: Callable[[], object], repeat: int) -> float:
    search()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        search()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("library", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    service = LibraryService(args.library)
    print(f"{cpu_name()}; {service.lib.photo_count():,} photos; median of {args.repeat} per request")
    for query in QUERIES:
        result = service.search(query)
        old = median_ms(
            lambda q=query: service.lib.search(SearchRequest(q, top=500, every_filter_match=True)), args.repeat
        )
        rows = {
            "before: best 500, no cutoff": old,
            f"the matches ({result.matches:,})": median_ms(lambda q=query: service.search(q), args.repeat),
        }
        for pages in (1, 10):
            weaker = pages * WEAKER_PAGE
            rows[f"matches + {weaker} weaker"] = median_ms(
                lambda q=query, w=weaker: service.search(q, weaker=w), args.repeat
            )
        print(f"\n{query!r}")
        for name, ms in rows.items():
            print(f"  {name:<34} {ms:7.1f} ms  ({ms / old:4.2f}x before)")


if __name__ == "__main__":
    main()
