"""Hard guards (hypothesis: zero violations over random customers and random policies) and
the stable A/B holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.features import empty_features
from journeyopt.serving.holdout import control_group, hash_unit
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import shipped_practice, shipped_rules
from journeyopt.sim.world import WorldSpec
from tests.serving.conftest import linear_policy

N = 64


class RoguePolicy:
    """A policy that ignores the masks: the most-scored action whatever the rules say."""

    def __init__(self, world: WorldSpec, seed: int) -> None:
        self.inner = linear_policy(world, seed, scale=10.0)
        self.spec = self.inner.spec
        self.pip_requirements = ()

    def act(self, observations: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        everything = np.ones_like(masks, dtype=bool)
        return self.inner.act(observations, everything)


def random_batch(world: WorldSpec, seed: int) -> CustomerBatch:
    """``N`` customers with random features (opt-outs, contact counts, recency, unknowns)."""
    rng = np.random.default_rng(seed)
    spec = world.features
    features = empty_features(spec, N)
    for name in features:
        if name.startswith("opted_out_"):
            features[name] = rng.random(N) < 0.3
        elif name == "lifecycle":
            features[name] = rng.integers(0, 4, N).astype(np.int8)
        elif name.startswith("contacts_"):
            features[name] = rng.integers(0, 5, N).astype(np.float64)
        elif name in ("recency_weeks", "monetary") or name.startswith("weeks_since_"):
            features[name] = np.where(rng.random(N) < 0.3, np.nan, rng.integers(0, 60, N))
        else:
            features[name] = rng.integers(0, 30, N).astype(np.float64)
    segment = rng.integers(-1, len(world.segment_names), N)
    ids = np.array([f"cust-{seed}-{i}" for i in range(N)], dtype=object)
    known = (segment >= 0) & (rng.random(N) < 0.9)
    as_of = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=int(rng.integers(0, 700)))
    return CustomerBatch(ids, features, segment, known, as_of)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**31),
    policy_seed=st.integers(0, 2**31),
    caps=st.fixed_dictionaries({"email": st.integers(0, 3), "phone": st.integers(0, 2)}),
    cooldown=st.integers(0, 4),
    share=st.floats(0.0, 0.9),
    rogue=st.booleans(),
    explore=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0),
)
def test_guards_never_let_a_forbidden_contact_through(
    served: ServedModel, world: WorldSpec, seed: int, policy_seed: int,
    caps: dict[str, int], cooldown: int, share: float, rogue: bool, explore: float,
) -> None:  # fmt: skip
    cfg = ServingConfig(
        rules=shipped_rules("coworking"), holdout=HoldoutConfig(staff=shipped_practice("coworking"))
    )
    cfg.rules.frequency_caps, cfg.rules.cooldown_weeks = caps, cooldown
    cfg.holdout.control_share = share
    cfg.exploration.share = explore
    policy = RoguePolicy(world, policy_seed) if rogue else linear_policy(world, policy_seed, 10.0)
    model = ServedModel(policy, "t", "t", "1", "t", "", "")  # type: ignore[arg-type]
    scorer = Scorer(model, cfg, world)
    batch = random_batch(world, seed)
    decisions = scorer.score(batch)
    f = batch.features
    channel = np.asarray(world.actions.channels, dtype=object)[decisions.actions]
    contacted = decisions.actions != 0
    fw = world.features.fatigue_weeks
    for ch in world.channels:
        on = contacted & (channel == ch)
        assert not (on & np.asarray(f[f"opted_out_{ch}"], bool)).any(), "opted-out contacted"
        if ch in caps:
            assert not (on & (f[f"contacts_{fw}w_{ch}"] >= caps[ch])).any(), "cap exceeded"
    if cooldown:
        assert not (contacted & (f["recency_weeks"] <= cooldown)).any(), "cool-down broken"
    assert not (contacted & ~batch.known).any(), "unknown customer contacted"
    rows = np.arange(N)
    assert (decisions.probabilities[rows, decisions.actions] > 0).all()
    np.testing.assert_allclose(decisions.probabilities.sum(axis=1), 1.0)
    assert (decisions.probabilities[decisions.reasons != 0] == 0).all()
    assert (decisions.probabilities[~batch.known, 1:] == 0).all()


def test_holdout_is_stable_salted_and_near_its_share() -> None:
    ids = [f"customer-{i}" for i in range(20_000)]
    control = control_group(ids, "salt-a", 0.1)
    assert abs(control.mean() - 0.1) < 0.01
    np.testing.assert_array_equal(control, control_group(list(reversed(ids)), "salt-a", 0.1)[::-1])
    assert (control_group(ids[:5], "salt-a", 0.1) == control[:5]).all()
    other = control_group(ids, "salt-b", 0.1)
    assert 0.05 < (other != control).mean() < 0.3  # another salt reshuffles
    assert not control_group(ids, "salt-a", 0.0).any()
    unit = hash_unit(["x"], "s")
    assert unit.shape == (1,) and 0.0 <= unit[0] < 1.0


def test_control_group_gets_the_staff_rules(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    batch = random_batch(world, 11)
    decisions = Scorer(served, settings, world).score(batch)
    control = decisions.control
    assert control.any() and (~control).any()
    # staff rules are deterministic: propensity 1 for every control decision
    assert (decisions.propensity[control] == 1.0).all()
