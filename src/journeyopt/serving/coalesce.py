"""Coalescing single-customer requests: the requests that reach the event loop together are
scored as one batch.

Scoring one customer costs about as much numpy overhead as scoring ten (a few hundred
microseconds of fixed cost per call), so under concurrent load a worker that scores each
request alone spends most of its time on that overhead. :class:`Coalescer` queues each
request's customer and schedules one flush with ``loop.call_soon``: every request whose body
was read in the same turn of the event loop joins the batch, and the flush runs as soon as
those requests wait. A lone request waits for nothing (its flush runs on the next turn).

Decisions are per customer (the scorer is vectorised over independent rows and its random
draws are hashes of the customer), so a customer gets the same decision alone or in a batch.
A batch that fails is retried customer by customer, so one bad request fails only itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

Decide = Callable[[Hashable, Sequence[Item]], Sequence[Result]]
"""``decide(key, items) -> results``: the results of ``items`` sharing ``key``, in order."""


class Coalescer(Generic[Item, Result]):
    """Batches items submitted in the same event-loop turn, per key.

    Args:
        decide: Scores items that share a key (e.g. the request's ``as_of``), synchronously.
        max_items: Most items in one call of ``decide``; more wait for the next turn.
    """

    def __init__(self, decide: Decide[Item, Result], max_items: int = 64) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self._decide = decide
        self._max_items = max_items
        self._pending: list[tuple[Hashable, Item, asyncio.Future[Result]]] = []
        self._scheduled = False

    async def submit(self, key: Hashable, item: Item) -> Result:
        """The result of ``item``, decided together with the items of the same turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((key, item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        taken = self._pending[: self._max_items]
        del self._pending[: self._max_items]
        self._scheduled = bool(self._pending)
        if self._scheduled:
            asyncio.get_running_loop().call_soon(self._flush)
        groups: dict[Hashable, list[tuple[Item, asyncio.Future[Result]]]] = {}
        for key, item, future in taken:
            if not future.done():  # a cancelled request (client gone) is not scored
                groups.setdefault(key, []).append((item, future))
        for key, members in groups.items():
            self._settle(key, members)

    def _settle(self, key: Hashable, members: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = self._decide(key, [item for item, _ in members])
        except Exception as err:  # handed to the request(s) it belongs to
            if len(members) == 1:
                _, future = members[0]
                if not future.done():
                    future.set_exception(err)
                return
            for member in members:  # find the culprit: each request on its own
                self._settle(key, [member])
            return
        for (_, future), result in zip(members, results, strict=True):
            if not future.done():
                future.set_result(result)
