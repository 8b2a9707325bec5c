"""``calibration.max_customers``: the fit uses a seeded random sample of whole customers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from journeyopt.calibration.pipeline import sample_customers
from journeyopt.data.ingest import ingest_to_logs

from .conftest import source_config


def test_sample_keeps_whole_customers_and_is_seeded(small_logs: Path) -> None:
    logs, _ = ingest_to_logs(source_config("coworking", [f"data.path={small_logs}"]))
    assert sample_customers(logs, 0, 0) is logs
    sample = sample_customers(logs, 200, seed=3)
    ids = set(sample.events["customer_id"]) | set(sample.contacts["customer_id"])
    assert 0 < len(ids) <= 200
    for frame, full in ((sample.events, logs.events), (sample.contacts, logs.contacts)):
        # every row of a sampled customer is kept, nobody else's
        expected = full[full["customer_id"].isin(ids)]
        assert len(frame) == len(expected)
    again = sample_customers(logs, 200, seed=3)
    pd.testing.assert_frame_equal(again.events, sample.events)
    other = sample_customers(logs, 200, seed=4)
    assert set(other.events["customer_id"]) != set(sample.events["customer_id"])
