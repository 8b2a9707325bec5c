"""``panel.lapse_weeks`` suggested from the logs (``journeyopt.panel.suggest``): the gaps
between a customer's conversion weeks, the fewest weeks holding 90 % of them, none from too
few gaps; ``journeyopt-ingest`` prints it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.panel.suggest import conversion_gaps_weeks, suggest_lapse_weeks
from tests.data.conftest import run_cli

MONDAY = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday


def _events(rows: list[tuple[str, float, str]]) -> pd.DataFrame:
    """(customer, days after MONDAY, role) -> canonical event columns the rule reads."""
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "ts": [MONDAY + pd.Timedelta(days=r[1]) for r in rows],
            "role": [r[2] for r in rows],
        }
    )


def test_gaps_are_between_distinct_conversion_weeks_of_each_customer() -> None:
    events = _events(
        [
            ("a", 0.5, "conversion"),
            ("a", 6.9, "conversion"),  # Sunday of week 0: the same week, no gap
            ("a", 14, "conversion"),  # week 2
            ("a", 35, "conversion"),  # week 5
            ("a", 21, "engagement"),  # not a conversion
            ("b", 8, "conversion"),  # week 1
            ("b", 78, "conversion"),  # week 11
            ("c", 3, "conversion"),  # one conversion: no gap
        ]
    )
    assert sorted(conversion_gaps_weeks(events).tolist()) == [2, 3, 10]
    assert conversion_gaps_weeks(events[events["role"] != "conversion"]).size == 0


def test_the_suggestion_is_the_rounded_up_90_percent_gap_and_needs_enough_gaps() -> None:
    rows = [(f"c{g}", d, "conversion") for g in range(1, 41) for d in (0.0, 7.0 * g)]
    suggestion = suggest_lapse_weeks(_events(rows))
    gaps = np.arange(1, 41)
    assert suggestion.n_gaps == 40 and suggestion.median_weeks == float(np.median(gaps))
    assert suggestion.lapse_weeks == 36  # the fewest weeks holding 90 % of the gaps 1..40
    assert (gaps <= suggestion.lapse_weeks).mean() >= 0.9 > (gaps < 36).mean()
    assert "suggested panel.lapse_weeks 36" in suggestion.line()
    few = suggest_lapse_weeks(_events(rows[:58]))  # 29 gaps
    assert few.lapse_weeks is None and "too few" in few.line()
    assert suggest_lapse_weeks(_events(rows), quantile=0.5).lapse_weeks == 20
    with pytest.raises(ValueError, match="quantile"):
        suggest_lapse_weeks(_events(rows), quantile=1.0)


def test_ingest_prints_the_suggestion(tmp_path: Path) -> None:
    """The CDNOW sample: 4,004 gaps, half within 6 weeks, 90 % within 29."""
    proc = run_cli(["data=cdnow_sample", "output_dir=out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(median 6 weeks, 90% <= 29): suggested panel.lapse_weeks 29" in proc.stdout
