"""Reuse of expensive pure results within one scope, keyed by the content they are computed from.

A weekly cycle's steps (the rollout, the uplift, the drift check, the calibration) each read
the same raw logs and build the same weekly panel. Inside :func:`reuse_scope` (the cycle
enters one), :func:`reused` computes a result once per key and hands every caller its own
copy; outside a scope it just computes. Keys are content hashes (:func:`content_key`,
:func:`frame_digest`) of everything the result depends on, so a changed file or table gives a
new key and a result is never silently stale; the scope's entries are dropped when it ends,
so nothing outlives the cycle in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")

_SCOPE: ContextVar[dict[str, Any] | None] = ContextVar("journeyopt_reuse_scope", default=None)
_HITS: ContextVar[dict[str, int] | None] = ContextVar("journeyopt_reuse_hits", default=None)


@contextmanager
def reuse_scope() -> Iterator[dict[str, int]]:
    """Reuse results computed by :func:`reused` until the block ends (a nested scope joins the
    outer one). Yields a dict ``kind -> hits`` counting the reused results (for reports and
    tests)."""
    if _SCOPE.get() is not None:
        hits = _HITS.get()
        assert hits is not None
        yield hits
        return
    store: dict[str, Any] = {}
    hits = {}
    scope_token, hits_token = _SCOPE.set(store), _HITS.set(hits)
    try:
        yield hits
    finally:
        _SCOPE.reset(scope_token)
        _HITS.reset(hits_token)
        store.clear()


def reused(kind: str, key: str, compute: Callable[[], T], copy: Callable[[T], T]) -> T:
    """``compute()``, or inside a :func:`reuse_scope` a ``copy`` of the result an earlier call
    with the same ``kind`` and ``key`` computed (callers may change what they get)."""
    store = _SCOPE.get()
    if store is None:
        return compute()
    full = f"{kind}:{key}"
    if full in store:
        hits = _HITS.get()
        assert hits is not None
        hits[kind] = hits.get(kind, 0) + 1
    else:
        store[full] = compute()
    return copy(store[full])


def in_scope() -> bool:
    """Whether a :func:`reuse_scope` is active (a caller skips hashing outside one)."""
    return _SCOPE.get() is not None


def content_key(*parts: str) -> str:
    """SHA-256 (hex) of ``parts`` (each a string: a config's ``repr``, a digest, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 (hex) of a table's column names, dtypes, row order and values (the index is
    ignored): equal tables give equal digests, any changed value a different one."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(np.int64(len(frame)).tobytes())
    if len(frame.columns):
        rows = pd.util.hash_pandas_object(frame, index=False, categorize=True)
        digest.update(np.ascontiguousarray(rows.to_numpy(np.uint64)).tobytes())
    return digest.hexdigest()
