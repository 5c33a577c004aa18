"""A persistent face gallery: SQLite holds the truth, a FAISS index (a cache of it) answers searches.

Storage. One SQLite file (WAL journal; ``synchronous=NORMAL``, ``FULL`` with ``durable=True``):
table ``faces(id, name, source, emb)``, each embedding a float32 blob, and table ``meta`` holding
the embedder's id and dimension, so embeddings of different models never mix (opening with another
id raises :class:`GalleryError`). Every write is one transaction: a crash, even ``kill -9`` in the
middle of an enrolment, loses nothing committed and leaves nothing half-written.

Search. A FAISS ``IndexIDMap2`` whose ids are the SQLite row ids, over ``IndexFlatL2`` (exact) while
the gallery is small and ``IndexHNSWFlat`` once it holds more than ``hnsw_threshold`` embeddings
(graph search; ``ef_search=256`` kept recall@1 at 1.0 against exact search on 1M clustered 128-d
embeddings in ``benchmarks/faces_gallery.py``, lower values lost recall there). The index
is written next to the database (``<db>.faiss``) on :meth:`Gallery.close`, and its generation and
file signature are recorded in ``meta``; reopening loads it instead of rebuilding. A stale index (a
crash before close, another process wrote since) is reconciled: rows it lacks are added, rows it has
that the database no longer holds are dropped (flat) or ignored (HNSW, which cannot delete; rebuilt
once more than a quarter of it is dead).

Results of :meth:`Gallery.identify` are **per name**: the k nearest identities, each with the
Euclidean distance of its closest enrolled embedding, ascending.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from convsight.errors import ConfigError, ConvsightError, InputFileError
from convsight.extras import require
from convsight.faces.gallery_index import best_per_name, index_kind

SCHEMA = 1
_DEAD_FRACTION = 0.25  # HNSW cannot delete: rebuild once this share of its vectors is removed rows


class GalleryError(ConvsightError):
    """The gallery file is unusable for this request (another embedder's, corrupt, wrong dimension)."""


class Gallery:
    """Enrol, remove and identify faces by embedding; a context manager (closing persists the index).

    path: the SQLite file (created if missing). embedder_id / dim: the model whose embeddings this
    gallery holds (fixed at creation). hnsw_threshold: above this many embeddings search is HNSW.
    hnsw_m / ef_construction / ef_search: HNSW's graph degree and beam widths. durable: fsync every
    commit (survives power loss too; without it, WAL commits survive any process crash).
    """

    def __init__(
        self, path: str | os.PathLike[str], embedder_id: str, dim: int, hnsw_threshold: int = 50_000,
        hnsw_m: int = 16, ef_construction: int = 40, ef_search: int = 256, durable: bool = False,
    ) -> None:  # fmt: skip
        if not embedder_id or not isinstance(embedder_id, str):
            raise ConfigError(f"embedder_id must be a non-empty string, got {embedder_id!r}")
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"dim must be an integer >= 1, got {dim!r}")
        require("faces", "the face gallery")  # FAISS, checked before any file is created
        self.path = Path(path)
        self.index_path = self.path.with_name(self.path.name + ".faiss")
        self.embedder_id, self.dim = embedder_id, dim
        self.hnsw_threshold, self.hnsw_m = hnsw_threshold, hnsw_m
        self.ef_construction, self.ef_search = ef_construction, ef_search
        if self.path.exists() and not self.path.is_file():
            raise InputFileError(f"{self.path}: exists and is not a gallery file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None)  # explicit transactions
        except sqlite3.Error as e:
            raise InputFileError(f"{self.path}: cannot open the gallery ({e})") from e
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: in WAL mode a commit survives a process crash (kill -9); FULL also an OS crash or power
            # loss, at one fsync per commit (~10 ms here): asked for with durable=True.
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._init_schema()
            self._dirty = False
            self._index = self._load_index()
        except BaseException as e:
            self._db.close()
            self._db = None  # type: ignore[assignment]
            if isinstance(e, sqlite3.DatabaseError):
                raise GalleryError(f"{self.path}: not a convsight gallery or corrupt ({e})") from e
            raise

    # --------------------------------------------------------------------------- context manager

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Persist the index if it changed, and close the database. Idempotent."""
        if getattr(self, "_db", None) is None:
            return
        try:
            if self._dirty:
                self._save_index()
        finally:
            self._db.close()
            self._db = None  # type: ignore[assignment]

    # --------------------------------------------------------------------------------- schema

    def _init_schema(self) -> None:
        db = self._db
        with _transaction(db):
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS faces (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "name TEXT NOT NULL, source TEXT NOT NULL, emb BLOB NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS faces_name ON faces(name)")
            meta = self._meta()
            if "embedder_id" not in meta:
                new = {"schema": SCHEMA, "embedder_id": self.embedder_id, "dim": self.dim, "generation": 0}
                db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in new.items()])
                return
        if meta["embedder_id"] != self.embedder_id:
            raise GalleryError(
                f"{self.path}: gallery holds embeddings of {meta['embedder_id']!r}, not {self.embedder_id!r}; "
                "embeddings of different models cannot be compared: use that model or another gallery file"
            )
        if int(meta["dim"]) != self.dim:
            raise GalleryError(f"{self.path}: gallery embeddings have {meta['dim']} dimensions, not {self.dim}")

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _generation(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def _bump_generation(self) -> bool:
        """Count one more write (inside its transaction); True when another process wrote since our
        index last matched the database (the index must then be reconciled, not patched)."""
        gen = self._generation()
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(gen + 1),))
        behind, self._gen = gen != self._gen, gen + 1
        return behind

    # ---------------------------------------------------------------------------------- writes

    def enroll(self, name: str, embeddings: np.ndarray, sources: Sequence[str] | None = None) -> int:
        """Add ``embeddings`` (N, D) float32 of one person ``name``; returns how many were added."""
        emb = self._check_embeddings(embeddings)
        return self.enroll_many([name] * len(emb), emb, sources)

    def enroll_many(self, names: Sequence[str], embeddings: np.ndarray, sources: Sequence[str] | None = None) -> int:
        """Bulk enrolment, one name per row, in one transaction: the fast path for large galleries."""
        emb = self._check_embeddings(embeddings)
        if len(names) != len(emb):
            raise ConfigError(f"{len(names)} names for {len(emb)} embeddings")
        for name in set(names):
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"a gallery name must be a non-empty string, got {name!r}")
        src = list(sources) if sources is not None else [""] * len(emb)
        if len(src) != len(emb):
            raise ConfigError(f"{len(src)} sources for {len(emb)} embeddings")
        if not len(emb):
            return 0
        with _transaction(self._db):
            # Ids are never reused (AUTOINCREMENT's high-water mark): a removed row may still sit in HNSW.
            seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'faces'").fetchone()
            first = (seq[0] if seq else 0) + 1
            rows = ((first + i, names[i], str(src[i]), emb[i].tobytes()) for i in range(len(emb)))
            self._db.executemany("INSERT INTO faces (id, name, source, emb) VALUES (?, ?, ?, ?)", rows)
            behind = self._bump_generation()
        # After the commit: a crash from here on leaves a stale index, which the next open reconciles.
        if behind:
            self._reconcile()
        else:
            self._add_to_index(emb, np.arange(first, first + len(emb), dtype=np.int64))
        return len(emb)

    def remove(self, name: str) -> int:
        """Delete every embedding of ``name``; returns how many rows went (0: unknown name)."""
        with _transaction(self._db):
            ids = [r[0] for r in self._db.execute("SELECT id FROM faces WHERE name = ?", (name,))]
            if not ids:
                return 0
            self._db.execute("DELETE FROM faces WHERE name = ?", (name,))
            behind = self._bump_generation()
        if behind:
            self._reconcile()
        else:
            self._drop_from_index(np.asarray(ids, dtype=np.int64))
        return len(ids)

    def _check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.size == 0:
            return emb.reshape(0, self.dim)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ConfigError(f"embeddings must be (N, {self.dim}), got {tuple(emb.shape)}")
        if not np.isfinite(emb).all():
            raise ConfigError("embeddings hold NaN or Inf values")
        return np.ascontiguousarray(emb)

    # ----------------------------------------------------------------------------------- reads

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM faces").fetchone()[0])

    def names(self) -> dict[str, int]:
        """Enrolled names and how many embeddings each has, sorted by name."""
        return dict(self._db.execute("SELECT name, COUNT(*) FROM faces GROUP BY name ORDER BY name").fetchall())

    def identify(self, queries: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """For each query (Q, D): up to ``k`` (name, distance) pairs, one per name (its closest
        embedding), Euclidean distance ascending. An empty gallery gives empty lists."""
        q = self._check_embeddings(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        if self._generation() != self._gen:  # another process wrote since: catch up first
            self._reconcile()
        total = int(self._index.ntotal)
        if total == 0 or len(q) == 0:
            return [[] for _ in range(len(q))]
        # Several embeddings per name (and dead HNSW entries) share the candidates: ask for more, and
        # more again until k names turn up (k distinct names among the nearest are the k best names).
        want, reachable = min(total, max(4 * k, 16)), k
        while True:
            dist, ids = self._index.search(q, want)
            names = self._names_of(ids[ids >= 0])
            results = [best_per_name(d, i, names, k) for d, i in zip(dist, ids, strict=True)]
            if want >= total or all(len(r) >= reachable for r in results):
                return results
            if reachable == k:  # fewer people than k enrolled? then do not widen to the whole index
                reachable = min(k, int(self._db.execute("SELECT COUNT(DISTINCT name) FROM faces").fetchone()[0]))
                if all(len(r) >= reachable for r in results):
                    return results
            want = min(total, want * 4)

    def _names_of(self, ids: np.ndarray) -> dict[int, str]:
        uniq = np.unique(ids).tolist()
        out: dict[int, str] = {}
        for i in range(0, len(uniq), 900):  # SQLite's bound-parameter limit
            chunk = uniq[i : i + 900]
            marks = ",".join("?" * len(chunk))
            out.update(self._db.execute(f"SELECT id, name FROM faces WHERE id IN ({marks})", chunk).fetchall())
        return out

    # ----------------------------------------------------------------------------------- index

    def set_ef_search(self, ef_search: int) -> None:
        """HNSW's search beam width: higher is slower and closer to exact (no effect on flat)."""
        self.ef_search = int(ef_search)
        if self.index_kind == "hnsw":
            import faiss

            faiss.downcast_index(self._index.index).hnsw.efSearch = self.ef_search

    @property
    def index_kind(self) -> str:
        """``"flat"`` or ``"hnsw"``: what the current search index is."""
        return index_kind(self._index)

    def _new_index(self, n: int):  # type: ignore[no-untyped-def]
        import faiss

        if n > self.hnsw_threshold:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        else:
            inner = faiss.IndexFlatL2(self.dim)
        return faiss.IndexIDMap2(inner)

    def _all_rows(self, min_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        cur = self._db.execute("SELECT id, emb FROM faces WHERE id > ? ORDER BY id", (min_id,))
        ids, blobs = [], []
        for row_id, blob in cur:
            ids.append(row_id)
            blobs.append(blob)
        emb = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, self.dim)
        return emb, np.asarray(ids, dtype=np.int64)

    def _rebuild(self) -> None:
        emb, ids = self._all_rows()
        self._index = self._new_index(len(ids))
        if len(ids):
            self._index.add_with_ids(emb, ids)
        self._live, self._dirty = len(ids), True

    def _add_to_index(self, emb: np.ndarray, ids: np.ndarray) -> None:
        self._live += len(ids)
        if self.index_kind == "flat" and self._live > self.hnsw_threshold:
            self._rebuild()  # crossed the threshold: switch to HNSW over everything
            return
        self._index.add_with_ids(emb, ids)
        self._dirty = True

    def _drop_from_index(self, ids: np.ndarray) -> None:
        import faiss

        self._live -= len(ids)
        if self.index_kind == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(ids))
        elif self._index.ntotal - self._live > _DEAD_FRACTION * self._index.ntotal:
            self._rebuild()
        self._dirty = True

    def _signature(self) -> str:
        st = self.index_path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def _save_index(self) -> None:
        import faiss

        from convsight.io.atomic import atomic_path

        with atomic_path(self.index_path) as tmp:
            faiss.write_index(self._index, str(tmp))
        with _transaction(self._db):  # the generation the index reflects, and which file that is
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("index_generation", str(self._gen)), ("index_signature", self._signature())],
            )
        self._dirty = False

    def _load_index(self):  # type: ignore[no-untyped-def]
        import faiss

        meta = self._meta()
        self._gen = int(meta["generation"])  # read first: a write after this is caught as stale later
        self._live = len(self)
        index = None
        if self.index_path.is_file():
            try:
                index = faiss.read_index(str(self.index_path))
            except RuntimeError:
                index = None  # unreadable cache: rebuilt from the database below
        if index is None or index.d != self.dim or index_kind(index) == "other":
            self._index = self._new_index(0)
            self._rebuild()
            return self._index
        self._index = index
        if index_kind(index) == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = self.ef_search
        fresh = meta.get("index_generation") == meta["generation"] and meta.get("index_signature") == self._signature()
        if not fresh:
            self._reconcile()
        return self._index

    def _reconcile(self) -> None:
        """Bring a stale index in line with the database (missing rows added, removed rows dropped)."""
        import faiss

        self._gen = self._generation()
        have = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        rows = np.asarray([r[0] for r in self._db.execute("SELECT id FROM faces")], dtype=np.int64)
        gone = np.setdiff1d(have, rows)
        missing = np.setdiff1d(rows, have)
        self._live = len(rows) - len(missing)
        if len(gone):
            self._live += len(gone)  # _drop_from_index counts them off again
            self._drop_from_index(gone)
        if len(missing):
            emb, ids = self._all_rows(int(missing.min()) - 1)
            keep = np.isin(ids, missing)
            self._add_to_index(emb[keep], ids[keep])
        self._dirty = True


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.db.execute("COMMIT" if t is None else "ROLLBACK")
