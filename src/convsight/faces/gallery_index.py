"""The FAISS side of :mod:`convsight.faces.gallery`: which index a gallery holds, and its hits
reduced to one answer per name. FAISS is imported only when an index is inspected."""

from __future__ import annotations

import numpy as np


def index_kind(index) -> str:  # type: ignore[no-untyped-def]
    """``"flat"``, ``"hnsw"`` or ``"other"``: the search structure inside a gallery's ``IndexIDMap``."""
    import faiss

    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else None
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(inner, faiss.IndexFlatL2):
        return "flat"
    return "other"


def best_per_name(dist: np.ndarray, ids: np.ndarray, names: dict[int, str], k: int) -> list[tuple[str, float]]:
    """One query's FAISS hits (squared L2, ascending) -> the ``k`` nearest names, each with the
    distance of its closest embedding; ids missing from ``names`` (removed rows) are skipped."""
    best: dict[str, float] = {}
    for d, i in zip(dist.tolist(), ids.tolist(), strict=True):  # ascending already
        name = names.get(i)  # None: a removed row still in the (HNSW) index
        if name is not None and name not in best:
            best[name] = float(np.sqrt(max(d, 0.0)))  # FAISS L2 gives squared distances
            if len(best) == k:
                break
    return list(best.items())
