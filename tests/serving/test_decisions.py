"""The decision log contract: columns, appends across threads, clear errors on bad files."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.errors import InputFileError
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import (
    DECISION_COLUMNS,
    RESPONSE_COLUMNS,
    DecisionLog,
    decision_ids,
    decision_table,
    probabilities_json,
    read_decision_log,
    response_columns,
)
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec
from tests.serving.test_guards_holdout import random_batch

ROW = {
    "decision_id": "d-0", "customer_id": "c1", "as_of": "2024-03-06T10:00:00+00:00",
    "week": "2024-03-04", "group": "treatment", "action": "newsletter", "channel": "email",
    "propensity": 0.7, "expected_value": 1.25, "model_name": "journey-policy",
    "model_version": "3", "probabilities": '{"none": 0.3, "newsletter": 0.7}', "arm": "full",
}  # fmt: skip


def rows(n: int, prefix: str) -> pd.DataFrame:
    return pd.DataFrame([{**ROW, "decision_id": f"{prefix}-{i}"} for i in range(n)])


def test_concurrent_appends_give_one_valid_file_per_day(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "log")
    day = datetime(2024, 3, 6, 23, 59, tzinfo=UTC)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: log.append(rows(25, f"t{k}"), now=day), range(16)))
    log.append(rows(3, "next"), now=datetime(2024, 3, 7, tzinfo=UTC))
    files = sorted(p.name for p in (tmp_path / "log").iterdir())
    assert files == ["decisions-2024-03-06.csv", "decisions-2024-03-07.csv"]
    frame = read_decision_log(tmp_path / "log")
    assert len(frame) == 16 * 25 + 3 and tuple(frame.columns) == DECISION_COLUMNS
    assert str(frame["as_of"].dtype) == "datetime64[ns, UTC]"


def test_the_log_is_continued_in_parts_and_the_oldest_files_go(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    one = len(rows(10, "x").to_csv(index=False, header=False))  # about one append
    log = DecisionLog(folder, file_bytes=3 * one, max_bytes=8 * one)
    for k, day in enumerate((5, 5, 5, 5, 6, 6, 6, 6, 6, 7)):
        log.append(rows(10, f"a{k}"), now=datetime(2024, 3, day, 12, tzinfo=UTC))
    names = sorted(p.name for p in folder.iterdir())
    assert "decisions-2024-03-05.csv" not in names  # the oldest went first
    assert {"decisions-2024-03-06.1.csv", "decisions-2024-03-07.csv"} <= set(names)
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 8 * one
    kept = read_decision_log(folder)["decision_id"].tolist()
    assert kept[-10:] == [f"a9-{i}" for i in range(10)]  # days, then parts, in order
    assert kept == sorted(kept, key=lambda d: (int(d.split("-")[0][1:]), int(d.split("-")[1])))


def test_a_write_larger_than_a_file_goes_whole_into_a_fresh_part(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, file_bytes=100)
    day = datetime(2024, 3, 6, tzinfo=UTC)
    first = log.append(rows(5, "a"), now=day)
    second = log.append(rows(5, "b"), now=day)
    assert (first.name, second.name) == ("decisions-2024-03-06.csv", "decisions-2024-03-06.1.csv")
    assert len(read_decision_log(tmp_path)) == 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"propensity": 0.0}, r"row 2, column propensity"),
        ({"group": "holdout"}, r"row 2, column group"),
        ({"week": "2024-03-05"}, r"row 2, column week"),
        ({"as_of": "yesterday"}, r"row 2, column as_of: cannot read 'yesterday'"),
        ({"probabilities": "{not json"}, r"row 2, column probabilities"),
        ({"decision_id": "d-0"}, r"decision_id"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, change: dict, message: str) -> None:
    frame = pd.DataFrame([ROW, {**ROW, "decision_id": "d-1", **change}])
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InputFileError, match=message) as err:
        read_decision_log(tmp_path / "d.csv")
    assert str(tmp_path / "d.csv") in str(err.value)


def test_wrong_columns_and_missing_files(tmp_path: Path) -> None:
    pd.DataFrame([ROW]).drop(columns="week").to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InputFileError, match=r"expected .*in this order"):
        read_decision_log(tmp_path / "d.csv")
    with pytest.raises(InputFileError, match="no such decision log file"):
        read_decision_log(tmp_path / "absent.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no decision log files"):
        read_decision_log(tmp_path / "empty")


def test_response_columns_are_the_decision_table_values(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    scorer = Scorer(served, settings, world)
    for seed in (1, 2):
        decisions = scorer.score(random_batch(world, seed))
        args = (decisions, scorer.action_names, scorer.channels, "journey-policy", "7")
        ids = decision_ids(decisions.batch.n)
        table = decision_table(*args, ids).to_pydict()
        fast = response_columns(*args, ids.to_pylist())
        assert tuple(fast) == RESPONSE_COLUMNS
        assert len(set(fast["decision_id"])) == decisions.batch.n
        for column in RESPONSE_COLUMNS:
            assert fast[column] == table[column], column


@pytest.mark.parametrize("distinct", [1, 3, 40, 200])
def test_probabilities_json_reads_back_to_the_rounded_values(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    rows = rng.dirichlet(np.ones(4), distinct)
    rows[0] = [1.0, 0.0, 0.0, 0.0]
    values = rows[rng.integers(0, distinct, 200)]
    names = ["none", 'e"mail', "call", "offer"]
    texts = probabilities_json(values, names).to_pylist()
    rounded = np.round(values, 6).tolist()
    assert [json.loads(t) for t in texts] == [dict(zip(names, r, strict=True)) for r in rounded]
