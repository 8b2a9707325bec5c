"""The campaign cycles of today's practice read off the logged contacts
(:mod:`journeyopt.calibration.cycles`): a calendar campaign is found at its period, a contact
that follows each customer's own state or chance is not, and a calibration without configured
cycles records and prints what it found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.calibration.cycles import (
    MIN_GAPS,
    PracticeCycles,
    action_cycle,
    cycles_meta,
    found_line,
    practice_cycles,
)
from journeyopt.calibration.pipeline import calibrate
from tests.calibration.conftest import calibration_config
from tests.data.conftest import run_cli

CUSTOMERS = 600
WEEKS = 80


def _practice(seed: int, offer_every: int = 13) -> pd.DataFrame:
    """Contacts of a known practice: a mailing to 90 % of customers every 4 weeks (week 1 of
    the 4-week calendar), an offer every ``offer_every`` weeks to a third of them, a call
    after a customer's own random engagement (3 % a week) at most every 5 weeks, and 2 % of
    customer-weeks explored uniformly over the three."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, str]] = []
    lapsed = rng.random(CUSTOMERS) < 1 / 3
    last_call = np.full(CUSTOMERS, -100)
    for week in range(WEEKS):
        for c in range(CUSTOMERS):
            if week % 4 == 1 and rng.random() < 0.9:
                rows.append((c, week, "mail"))
            if week % offer_every == 5 and lapsed[c]:
                rows.append((c, week, "offer"))
            if rng.random() < 0.03 and week - last_call[c] >= 5:
                rows.append((c, week, "call"))
                last_call[c] = week
            if rng.random() < 0.02:
                rows.append((c, week, str(rng.choice(["mail", "offer", "call"]))))
            rows.append((c, week, "none"))  # a logged no-contact decision
    return pd.DataFrame(rows, columns=["customer_id", "week", "action"])


@pytest.mark.parametrize("seed", [0, 1])
def test_calendar_campaigns_are_found_and_state_driven_contacts_are_not(seed: int) -> None:
    found = practice_cycles(_practice(seed))
    assert found.weeks == (4, 13), found
    by_name = {a.action: a for a in found.actions}
    assert set(by_name) == {"mail", "offer", "call"}  # "none" is no contact
    assert by_name["mail"].modal_gap_weeks == 4 and by_name["mail"].calendar_excess > 0.8
    assert by_name["offer"].modal_gap_weeks == 13
    assert not by_name["call"].cycle and by_name["call"].calendar_excess < 0.3


def test_another_period_is_found_as_its_own() -> None:
    assert practice_cycles(_practice(0, offer_every=6)).weeks == (4, 6)


def test_no_contacts_and_too_few_gaps_give_no_cycle() -> None:
    empty = pd.DataFrame({"customer_id": ["a"], "week": [3], "action": ["none"]})
    assert practice_cycles(empty) == PracticeCycles((), ())
    few = np.arange(MIN_GAPS)  # one customer mailed every 4 weeks: MIN_GAPS - 1 gaps
    evidence = action_cycle("mail", np.zeros(few.size, np.int64), 4 * few)
    assert evidence.gaps == MIN_GAPS - 1 and not evidence.cycle
    assert action_cycle("mail", np.zeros(few.size + 1, np.int64), 4 * np.arange(few.size + 1)).cycle


def test_the_record_and_the_line_say_where_the_cycles_came_from() -> None:
    found = practice_cycles(_practice(0))
    meta = cycles_meta([4, 13], found)
    assert meta["source"] == "logs" and meta["weeks"] == [4, 13]
    line = found_line(meta)
    assert line is not None and "mail every 4" in line and "offer every 13" in line
    assert "calibration.practice_cycles_weeks: [4, 13]" in line and "\n" not in line
    assert found_line(cycles_meta([2, 4, 13], None)) is None  # configured: nothing to report
    assert cycles_meta([2, 4, 13], None) == {"weeks": [2, 4, 13], "source": "config"}


def test_a_calibration_without_configured_cycles_reads_them_off_the_logs(
    small_logs: Path, tmp_path: Path
) -> None:
    """``calibration.practice_cycles_weeks: null`` (the shipped default): the calibration finds
    the demo staff's 4-week newsletter in logs with 30 % exploration, fits today's practice on
    the cycles found and records them, with their evidence, in ``calibration.json``."""
    cfg = calibration_config(
        small_logs,
        tmp_path / "world",
        practice_cycles_weeks=None,
    )
    result = calibrate(cfg)
    meta = json.loads((tmp_path / "world" / "calibration.json").read_text())
    record = meta["practice_cycles"]
    assert record["source"] == "logs" and 4 in record["weeks"], record
    assert meta["config"]["calibration"]["practice_cycles_weeks"] is None  # as configured
    practice = result.estimate.calibrated.world.logged_practice
    assert practice is not None and list(practice.cycles) == record["weeks"]
    assert found_line(record) is not None


def test_ingest_shows_the_cycles_calibration_would_read(tmp_path: Path) -> None:
    """The README's CRM example (its staff mail a newsletter every 4 weeks and a win-back
    offer every 13): ``journeyopt-ingest`` prints both; CDNOW, without contacts, prints none."""
    proc = run_cli(["data=coworking_crm", "output_dir=out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = "found in the logs: discount_offer every 13, newsletter every 4 weeks"
    said = " ".join(proc.stdout.split())  # the console wraps long lines
    assert f"{line} (calibration.practice_cycles_weeks: [4, 13])" in said
    purchases = run_cli(["data=cdnow_sample", "output_dir=cdnow"], cwd=tmp_path)
    assert purchases.returncode == 0 and "campaign cycles" not in purchases.stdout
