"""The search kernel alone at 10k, 100k and 1M synthetic unit embeddings: a breakdown, not what the user waits for
(that is bench/library_scale.py, whole processes on built libraries).

    python bench/search_latency.py [--dim 384] [--sizes 10000 100000 1000000]

Measures what a query costs once the text is embedded and the store is mapped: one pass over the float16 rows
(core.scoring.score_terms) plus the top-k (core.search.top_k), the code SearchEngine runs, for a plain query and for
one with a negative term (two terms in the pass, then core.query.demote). Median of 20 queries.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.query import demote  # noqa: E402
from core.scoring import score_terms  # noqa: E402
from core.search import top_k  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=384, help="embedding size (starter 384, MobileCLIP 512/768)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--top", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    baseline = None
    for size in args.sizes:
        matrix = rng.standard_normal((size, args.dim), dtype=np.float32)
        matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float16)
        queries = rng.standard_normal((21, 2, args.dim), dtype=np.float32)
        # All plain queries, then all with a negative term: each kind has its own onnxruntime session, and one that
        # has just run keeps its threads spinning for a moment, which would slow the other's next run.
        plain, negative = [], []
        for query in queries:
            start = time.perf_counter()
            top_k(score_terms(matrix, query[0])[0], args.top)
            plain.append(time.perf_counter() - start)
        for query in queries:
            start = time.perf_counter()
            terms = score_terms(matrix, query)
            top_k(demote(terms[0], terms[1:]), args.top)
            negative.append(time.perf_counter() - start)
        median_ms, negative_ms = (statistics.median(times[1:]) * 1000 for times in (plain, negative))
        baseline = baseline or median_ms / size
        print(
            f"{size:>9,} photos x {args.dim}: median {median_ms:7.2f} ms per query "
            f"(per-photo cost {median_ms / size / baseline:.2f}x the smallest size's), "
            f"with a negative term {negative_ms:7.2f} ms ({negative_ms / median_ms:.2f}x), "
            f"matrix {matrix.nbytes / 2**20:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
