"""Cosine scores of float16 embedding rows against float32 queries, in one pass over a memory-mapped matrix.

numpy has no fast float16 product: widening 1M x 384 rows to float32 costs about 0.6 s on one core, while
onnxruntime's Cast kernel widens with SIMD on all cores and feeds MatMul chunk by chunk (about 0.15 s at 1M on
two cores). The graphs (a Cast, then one MatMul for all queries or one per query term) are written here as
protobuf bytes, so core needs no `onnx` package for them.
"""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort

# Rows per run: the chunk widened to float32 (3 MiB) stays in the cores' caches between the Cast and the MatMul.
# Measured at 1M x 384 (Xeon, 2 MiB L2 per core, quiet): 2,048 rows 84 ms, 16,384 rows 119 ms, 256 rows 179 ms.
CHUNK_FLOAT32_BYTES = 3 << 20
# Terms scored as one matrix-vector product each over the widened chunk; more run as one matrix-matrix product, whose
# cost hardly grows with its columns. Measured at 1M x 384 (same Xeon, quiet): a plain query 76 ms; query + negative
# 91 ms as two products, 122 ms as one; three terms 105 ms either way.
MAX_TERMS = 2
_FLOAT, _FLOAT16, _ATTRIBUTE_INT = 1, 10, 2  # onnx TensorProto.DataType and AttributeProto.AttributeType values


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    """One protobuf field: an int as a varint, text or a nested message as length-delimited bytes."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor_info(name: str, elem_type: int, dims: tuple[str, str]) -> bytes:
    shape = b"".join(_field(1, _field(2, dim)) for dim in dims)  # symbolic dimensions (dim_param)
    tensor_type = _field(1, elem_type) + _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _cast_node() -> bytes:
    cast = _field(1, "rows") + _field(2, "wide") + _field(4, "Cast")
    return cast + _field(5, _field(1, "to") + _field(3, _FLOAT) + _field(20, _ATTRIBUTE_INT))  # to=FLOAT, typed INT


def _model(nodes: list[bytes], inputs: list[bytes], outputs: list[bytes]) -> bytes:
    graph = b"".join(_field(1, node) for node in nodes) + _field(2, "score_rows")
    graph += b"".join(_field(11, info) for info in inputs) + b"".join(_field(12, info) for info in outputs)
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(2, "photoseek") + _field(7, graph) + _field(8, opset)


def scoring_graph() -> bytes:
    """ONNX model bytes: scores[n, k] = float(rows[n, d]) @ queries[d, k]."""
    matmul = _field(1, "wide") + _field(1, "queries") + _field(2, "scores") + _field(4, "MatMul")
    inputs = [_tensor_info("rows", _FLOAT16, ("n", "d")), _tensor_info("queries", _FLOAT, ("d", "k"))]
    return _model([_cast_node(), matmul], inputs, [_tensor_info("scores", _FLOAT, ("n", "k"))])


def terms_graph(terms: int) -> bytes:
    """ONNX model bytes: scores_i[n, 1] = float(rows[n, d]) @ query_i[d, 1] for each of `terms` queries, the rows
    widened once. A matrix-vector product per term beats one matrix-matrix product over a handful of columns."""
    nodes, inputs, outputs = [_cast_node()], [_tensor_info("rows", _FLOAT16, ("n", "d"))], []
    for term in range(terms):
        nodes.append(_field(1, "wide") + _field(1, f"query{term}") + _field(2, f"scores{term}") + _field(4, "MatMul"))
        inputs.append(_tensor_info(f"query{term}", _FLOAT, ("d", "one")))
        outputs.append(_tensor_info(f"scores{term}", _FLOAT, ("n", "one")))
    return _model(nodes, inputs, outputs)


_sessions: dict[int, ort.InferenceSession] = {}  # by number of terms; 0: the matrix-matrix graph
_session_lock = threading.Lock()


def _scorer(terms: int) -> ort.InferenceSession:
    with _session_lock:
        if terms not in _sessions:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            options.enable_cpu_mem_arena = False  # an arena would keep the widest chunk's buffers for good
            graph = terms_graph(terms) if terms else scoring_graph()
            _sessions[terms] = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return _sessions[terms]


def _chunk_rows(rows: np.ndarray) -> int:
    return max(256, CHUNK_FLOAT32_BYTES // (4 * max(1, rows.shape[1])))


def score_rows(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """float32 [N, K] dot products of float16 rows [N, D] (a memory map is read once, in order) with queries [K, D]."""
    queries = np.ascontiguousarray(np.atleast_2d(queries).T, dtype=np.float32)
    scores = np.empty((rows.shape[0], queries.shape[1]), np.float32)
    session = _scorer(0)
    step = _chunk_rows(rows)
    for start in range(0, rows.shape[0], step):
        chunk = np.ascontiguousarray(rows[start : start + step], dtype=np.float16)
        scores[start : start + len(chunk)] = session.run(None, {"rows": chunk, "queries": queries})[0]
    return scores


def score_terms(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """float32 [K, N]: each of a few query terms [K, D] against float16 rows [N, D], a term's scores contiguous.
    The same scores as `score_rows`; with more than MAX_TERMS terms it is the one that runs."""
    queries = np.atleast_2d(queries)
    if not 0 < len(queries) <= MAX_TERMS:
        return np.ascontiguousarray(score_rows(rows, queries).T)
    feeds = {f"query{term}": np.ascontiguousarray(query[:, None], np.float32) for term, query in enumerate(queries)}
    scores = np.empty((len(queries), rows.shape[0]), np.float32)
    session = _scorer(len(queries))
    step = _chunk_rows(rows)
    for start in range(0, rows.shape[0], step):
        feeds["rows"] = np.ascontiguousarray(rows[start : start + step], dtype=np.float16)
        for term, column in enumerate(session.run(None, feeds)):
            scores[term, start : start + len(column)] = column[:, 0]
    return scores
