"""The log generator: determinism, the coworking raw format, mess counts that match the files,
and (when ingestion is available) an end-to-end reconciliation with ``truth.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from journeyopt.cli.entry import to_object
from journeyopt.cli.generate import run
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError, OutputExistsError
from journeyopt.sim.config import (
    GenerateConfig,
    MessConfig,
    SimulatorConfig,
    register_configs,
    shipped_practice,
)
from journeyopt.sim.logs import LOG_FILES, generate_logs, write_logs
from journeyopt.sim.world import WORLDS_DIR, WorldSpec

CONFIGS = WORLDS_DIR.parent / "configs"
MESS = MessConfig(
    exact_duplicate_rate=0.02,
    near_duplicate_rate=0.02,
    identity_fragment_rate=0.1,
    offset_timestamp_rate=0.1,
    malformed_rate=0.02,
)


def _cfg(tmp: Path, **overrides: object) -> GenerateConfig:
    fields = {
        "output_dir": str(tmp),
        "n_customers": 300,
        "weeks": 30,
        "seed": 7,
        "simulator": SimulatorConfig(world="coworking"),
        "staff": shipped_practice("coworking"),
        **overrides,
    }
    return GenerateConfig(**fields)  # type: ignore[arg-type]


def _source(path: Path) -> SourceConfig:
    cfg = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    cfg.path = str(path)
    return to_object(cfg, SourceConfig)


def _read(path: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(path / name, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("messy")
    run(_cfg(out, mess=MESS))
    return out


def test_generated_files_have_the_coworking_raw_columns(messy: Path) -> None:
    source = _source(messy)
    for table in ("events", "contacts", "identities", "customers"):
        mapping = getattr(source, table)
        frame = _read(messy, mapping.file)
        assert set(mapping.columns.values()) <= set(frame.columns), table
    assert sorted(p.name for p in messy.iterdir()) == sorted(LOG_FILES)


def test_truth_counts_match_the_files(messy: Path, world: WorldSpec) -> None:
    truth = json.loads((messy / "truth.json").read_text())
    mess = truth["mess"]
    events = _read(messy, "events.csv")
    contacts = _read(messy, "contacts.csv")
    assert len(events) == truth["events"] + truth["duplicate_rows"] + truth["malformed_rows"]
    assert len(contacts) == truth["contact_rows"]
    assert (contacts["action"] != "none").sum() == truth["contacts"]
    assert events.duplicated().sum() == mess["exact_duplicate_events"]
    assert (events["customer_ref"] == "").sum() == mess["malformed_empty_customer_ref"]
    known = set(_source(messy).event_roles)
    assert (~events["event_type"].isin(known)).sum() == mess["malformed_unknown_event_type"]
    amount = pd.to_numeric(events["amount"], errors="coerce")
    assert (amount < 0).sum() == mess["malformed_negative_amount"]
    assert (amount.isna() & (events["amount"] != "")).sum() == mess["malformed_non_numeric_amount"]
    ts = pd.to_datetime(events["timestamp"], errors="coerce", format="mixed", utc=True)
    assert ts.isna().sum() == mess["malformed_unparseable_date"]
    offset = events["timestamp"].str.contains(r"(?:Z|\+01:00)$")
    assert offset.sum() == mess["offset_timestamp_events"]
    assert (
        contacts["timestamp"].str.contains(r"(?:Z|\+01:00)$").sum()
        == (mess["offset_timestamp_contacts"])
    )
    refs = set(_read(messy, "identities.csv")["customer_ref"])
    assert refs == set(truth["person_of_ref"]) == set(_read(messy, "customers.csv")["customer_ref"])
    assert len(set(truth["person_of_ref"].values())) == truth["n_persons"] == 300
    assert len(refs) == 300 + mess["identity_fragments"]
    fragments = set(truth["fragment_refs"])
    assert len(fragments) == mess["identity_fragments"]
    assert not fragments & set(contacts["customer_ref"])  # the company knows the primary refs
    under_fragments = int(events["customer_ref"].isin(fragments).sum())
    extra = truth["duplicate_rows"] + truth["malformed_rows"]
    assert (
        mess["events_under_fragments"] <= under_fragments <= mess["events_under_fragments"] + extra
    )
    conv = events["event_type"].isin(world.kinds) & ~events.duplicated()
    assert conv.sum() >= truth["conversions"]


def test_propensities_are_those_of_the_behaviour_policy(messy: Path) -> None:
    contacts = _read(messy, "contacts.csv")
    p = contacts["propensity"].astype(float)
    assert ((p > 0) & (p <= 1)).all()
    # staff action: 0.9 + 0.1/|allowed|; exploration only: 0.1/|allowed|, |allowed| in 1..5
    allowed = {0.9 + 0.1 / k for k in range(1, 6)} | {0.1 / k for k in range(1, 6)}
    assert all(min(abs(v - a) for a in allowed) < 1e-12 for v in p.unique())


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    run(_cfg(tmp_path / "a", mess=MESS))
    run(_cfg(tmp_path / "b", mess=MESS))
    run(_cfg(tmp_path / "c", mess=MESS, seed=8))
    for name in LOG_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "events.csv").read_bytes() != (
        tmp_path / "c" / "events.csv"
    ).read_bytes()


def test_refuses_a_non_empty_output_dir(tmp_path: Path, world: WorldSpec) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    logs = generate_logs(world, _cfg(tmp_path, weeks=3), np.random.default_rng(0))
    with pytest.raises(OutputExistsError, match="not empty"):
        write_logs(logs, tmp_path)
    write_logs(logs, tmp_path, overwrite=True)
    assert (tmp_path / "events.csv").exists()


def test_none_decisions_can_be_left_out(tmp_path: Path, world: WorldSpec) -> None:
    cfg = _cfg(tmp_path, log_none_decisions=False)
    logs = generate_logs(world, cfg, np.random.default_rng(0))
    actions = logs.tables.contacts.column("action").to_pylist()
    assert "none" not in actions and len(actions) == logs.truth.contacts


def test_generate_config_composes_and_validates(tmp_path: Path) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "generate",
            overrides=[
                "simulator=coworking",
                "practice@staff=coworking",
                f"output_dir={tmp_path}",
                "mess.malformed_rate=0.1",
            ],
        )
    typed = to_object(cfg, GenerateConfig)
    assert typed.simulator.world == "coworking" and typed.simulator.horizon_weeks == 52
    assert typed.mess.malformed_rate == 0.1
    with pytest.raises(ConfigError, match="Monday"):
        _cfg(tmp_path, start_date="2023-01-03")
    with pytest.raises(ConfigError, match="malformed_rate"):
        MessConfig(malformed_rate=2.0)


def test_end_to_end_ingestion_reconciles_with_truth(messy: Path) -> None:
    ingest = pytest.importorskip("journeyopt.data.ingest")
    logs, result = ingest.ingest_to_logs(_source(messy))
    truth = json.loads((messy / "truth.json").read_text())
    mess = truth["mess"]
    assert result.events.rejected == truth["malformed_rows"]
    assert (
        result.events.duplicates_exact + result.events.duplicates_event_id
        == (mess["exact_duplicate_events"])
    )
    assert result.events.duplicates_near == mess["near_duplicate_events"]
    assert result.events.accepted == truth["events"]
    assert result.resolved_customers == truth["n_persons"]
    assert result.contacts.accepted == truth["contact_rows"]
    conversions = logs.events[logs.events["role"] == "conversion"]
    assert len(conversions) == truth["conversions"]
    assert conversions["value"].sum() == pytest.approx(truth["revenue"], abs=0.01)


def test_panel_rebuilds_the_simulated_state_from_messy_logs(messy: Path, world: WorldSpec) -> None:
    """Generate with mess -> ingest -> panel: every feature of every person at the end of the
    logs equals the simulator's own state, so a policy sees the same numbers on logs."""
    ingest = pytest.importorskip("journeyopt.data.ingest")
    build = pytest.importorskip("journeyopt.panel.build")
    from journeyopt.panel.state import state_features
    from tests.panel.windows import panel_config

    cfg = _cfg(messy, mess=MESS)
    logs = generate_logs(world, cfg, np.random.default_rng(cfg.seed))
    canonical, _ = ingest.ingest_to_logs(_source(messy))
    as_of = cfg.start + pd.Timedelta(weeks=cfg.weeks)
    ids, panel_state = build.state_at(canonical, panel_config(), world.channels, as_of)
    person = np.array([logs.truth.person_of_ref[str(i)] for i in ids])
    assert sorted(person) == list(range(cfg.n_customers))
    expected = state_features(logs.simulation.final_state.take(person), world.features)
    actual = state_features(panel_state, world.features)
    for name in world.features.feature_names:
        np.testing.assert_allclose(
            np.asarray(actual[name], float), np.asarray(expected[name], float), err_msg=name
        )
