"""Coalescing concurrent single requests: one batch per event-loop turn and key, results in
order, a failing request fails alone, and the API answers the same decisions coalesced or
one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import replace

import httpx
import pytest

from journeyopt.serving.app import create_app
from journeyopt.serving.coalesce import Coalescer
from journeyopt.serving.config import ExplorationConfig, ServingConfig
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec
from tests.serving.test_app import AS_OF, feature_record

KEPT = ("customer_id", "group", "action", "probabilities", "scores", "propensity",
        "expected_value", "masked", "known", "model_version")  # fmt: skip


def test_items_of_one_turn_are_decided_together() -> None:
    calls: list[tuple[Hashable, list[str]]] = []

    def decide(key: Hashable, items: Sequence[str]) -> list[str]:
        calls.append((key, list(items)))
        if "bad" in items:
            raise ValueError("bad item")
        return [f"{key}:{item}" for item in items]

    async def main() -> list[object]:
        coalescer: Coalescer[str, str] = Coalescer(decide, max_items=4)
        jobs = [coalescer.submit("k" if i % 3 else "j", f"i{i}") for i in range(7)]
        jobs.append(coalescer.submit("k", "bad"))
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:7] == [f"{'k' if i % 3 else 'j'}:i{i}" for i in range(7)]
    assert isinstance(results[7], ValueError)
    sizes = [len(items) for _, items in calls]
    assert max(sizes) <= 4  # first turn: the first 4 items, by key
    assert calls[:2] == [("j", ["i0", "i3"]), ("k", ["i1", "i2"])]
    assert ("k", ["bad"]) in calls  # the failed batch was retried item by item
    with pytest.raises(ValueError, match="max_items"):
        Coalescer(decide, max_items=0)


def test_coalesced_requests_get_their_own_decisions(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    cfg = replace(settings, exploration=ExplorationConfig(share=0.5))
    app = create_app(cfg, lambda: served, world, token="")
    segments = ["freelancer", "startup_team", "corporate_team", "spaceship"]
    bodies = [
        {"customer_id": f"c{i}", "segment": segments[i % 4], "as_of": AS_OF,
         "features": feature_record(frequency=i % 5, contacts_4w_email=i % 3)}
        for i in range(24)
    ] + [{"customer_id": "new"}]  # fmt: skip

    async def main() -> tuple[list[dict], list[dict]]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://api") as http,
        ):
            together = await asyncio.gather(*(http.post("/v1/score", json=b) for b in bodies))
            alone = [await http.post("/v1/score", json=b) for b in bodies]
        assert all(r.status_code == 200 for r in together + alone)
        return [r.json() for r in together], [r.json() for r in alone]

    together, alone = asyncio.run(main())
    assert [{k: d[k] for k in KEPT} for d in together] == [{k: d[k] for k in KEPT} for d in alone]
    assert len({d["decision_id"] for d in together + alone}) == 2 * len(bodies)
    assert {d["group"] for d in together} == {"treatment", "control"}
