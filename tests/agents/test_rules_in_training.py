"""Training knows the contact rules serving enforces: the agent learns, and every policy is
evaluated, under ``simulator.rules`` — the same object serving guards with (``serve.rules``).

Regression for a policy trained in a world with opt-outs as its only rule, which contacted
0.84 times per customer-week and was then cut back by serving's guard: a policy never trained
for the world it was served in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from journeyopt.agents.config import register_configs, train_config
from journeyopt.agents.sb3 import make_training_env
from journeyopt.agents.train import _prepare_world, train
from journeyopt.cli import demo as demo_cli
from journeyopt.errors import ConfigError
from journeyopt.serving.config import register_configs as register_serving
from journeyopt.sim.config import (
    CapConfig,
    EligibilityConfig,
    QuietWeeksConfig,
    RulesConfig,
    SimulatorConfig,
)
from journeyopt.sim.rules import selected_actions
from journeyopt.sim.world import WorldSpec
from tests.commands import DEMO_WORLD

register_configs()
register_serving()
TINY = [
    *DEMO_WORLD,
    "agent=maskable_ppo",
    "agent.batch_size=128",
    "train=smoke",
    "train.total_timesteps=512",
    "train.n_customers=16",
    "train.eval_every_steps=0",
    "train.eval_customers=50",
    "train.checkpoint_every_steps=0",
    "train.warm_start.enabled=false",
    "simulator.horizon_weeks=6",
    "evaluation.n_customers=150",
    "tracking=off",
]

rule_sets = st.builds(
    RulesConfig,
    frequency_caps=st.dictionaries(
        st.sampled_from(["email", "phone"]), st.integers(0, 2), max_size=2
    ),
    cooldown_weeks=st.integers(0, 2),
    total_cap=st.one_of(st.none(), st.integers(0, 3)),
    min_gap_weeks=st.integers(0, 3),
    caps=st.lists(
        st.one_of(
            st.builds(CapConfig, st.integers(0, 2), st.integers(1, 9), over=st.just("all")),
            st.builds(
                CapConfig,
                st.integers(0, 2),
                st.integers(1, 9),
                channels=st.sampled_from([["email"], ["phone"], ["email", "phone"]]),
            ),
            st.builds(
                CapConfig,
                st.integers(0, 2),
                st.integers(1, 9),
                actions=st.sampled_from([["personal_call"], ["newsletter", "discount_offer"]]),
            ),
        ),
        max_size=3,
    ),
    quiet_weeks=st.lists(
        st.builds(
            QuietWeeksConfig,
            weeks=st.lists(st.integers(1, 6), min_size=1, max_size=3),
            channels=st.sampled_from([[], ["phone"]]),
        ),
        max_size=1,
    ),
    eligibility=st.lists(
        st.builds(
            EligibilityConfig,
            segments=st.sampled_from([["corporate_team"], ["startup_team", "freelancer"]]),
            lifecycle=st.sampled_from([[], ["active", "lapsed"]]),
            actions=st.sampled_from([["personal_call"], ["discount_offer"]]),
        ),
        max_size=1,
    ),
)


def _cap_override(cap: CapConfig) -> str:
    counted = (
        "over:all"
        if cap.over
        else f"channels:[{','.join(cap.channels)}]"
        if cap.channels
        else f"actions:[{','.join(cap.actions)}]"
    )
    return f"{{{counted},max:{cap.max},window_weeks:{cap.window_weeks}}}"


def _overrides(rules: RulesConfig) -> list[str]:
    caps = ",".join(f"{c}:{n}" for c, n in rules.frequency_caps.items())
    return [
        f"simulator.rules.frequency_caps={{{caps}}}",
        f"simulator.rules.cooldown_weeks={rules.cooldown_weeks}",
        f"simulator.rules.total_cap={'null' if rules.total_cap is None else rules.total_cap}",
        f"simulator.rules.min_gap_weeks={rules.min_gap_weeks}",
        f"simulator.rules.caps=[{','.join(_cap_override(c) for c in rules.caps)}]",
        "simulator.rules.quiet_weeks=["
        + ",".join(
            f"{{weeks:[{','.join(map(str, q.weeks))}],channels:[{','.join(q.channels)}]}}"
            for q in rules.quiet_weeks
        )
        + "]",
        "simulator.rules.eligibility=["
        + ",".join(
            f"{{segments:[{','.join(e.segments)}],lifecycle:[{','.join(e.lifecycle)}],"
            f"actions:[{','.join(e.actions)}]}}"
            for e in rules.eligibility
        )
        + "]",
    ]


def test_the_demo_trains_and_serves_under_the_same_rules() -> None:
    """The coworking world trains under the demo's rules; serving them is the demo's choice
    (``rules@serve.rules=coworking``, as ``journeyopt-demo`` makes it), not the serve group's
    default, which has no rule beyond opt-outs."""
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        trained = compose("train", overrides=[*DEMO_WORLD, "tracking=off"])
        served = compose("serve", overrides=["data=coworking", "rules@serve.rules=coworking"])
        generic = compose("serve", overrides=["data=coworking"])
        demo = compose("demo")
    assert demo_cli.DemoConfig  # its schema, registered on import, composes the demo
    assert dict(generic.serve.rules) == dict(OmegaConf.structured(RulesConfig()))
    assert demo.serve.rules == demo.simulator.rules == served.serve.rules
    cfg = train_config(trained)
    assert cfg.simulator.rules.frequency_caps == {"email": 2, "phone": 1}
    assert dict(served.serve.rules) == {
        "frequency_caps": cfg.simulator.rules.frequency_caps,
        "cooldown_weeks": cfg.simulator.rules.cooldown_weeks,
        "total_cap": cfg.simulator.rules.total_cap,
        "min_gap_weeks": cfg.simulator.rules.min_gap_weeks,
        "caps": cfg.simulator.rules.caps,
        "quiet_weeks": cfg.simulator.rules.quiet_weeks,
        "eligibility": cfg.simulator.rules.eligibility,
        "capacity": cfg.simulator.rules.capacity,
        "capacity_customers": cfg.simulator.rules.capacity_customers,
    }
    assert SimulatorConfig().rules == RulesConfig()  # the schema itself sets no rule


@settings(max_examples=10, deadline=None)
@given(rules=rule_sets)
def test_the_training_env_masks_are_the_configured_rules(
    world: WorldSpec, rules: RulesConfig
) -> None:
    contact_rules = rules.for_world(world, "simulator.rules")
    env, population = make_training_env(
        world, 64, 6, 1, np.full(3, 0.01, np.float32), pool_size=500, seed=1, rules=contact_rules
    )
    env.reset()
    taken: list[np.ndarray] = []
    for week in range(5):
        masks = np.stack(env.env_method("action_masks"))
        woy = week + 1  # the episode starts in ISO week 1
        expected = contact_rules.masks(
            population.features, segment=population.segment, week_of_year=woy
        )
        np.testing.assert_array_equal(masks, expected)
        actions = np.array([np.flatnonzero(m)[-1] for m in masks])  # the costliest allowed
        taken.append(actions)
        for quiet in contact_rules.quiet:  # brute force: nothing of a quiet week is chosen
            if woy in quiet.weeks:
                assert not selected_actions(world.actions, quiet.channels, quiet.actions)[
                    actions
                ].any()
        for rule in contact_rules.eligibility:
            chosen = selected_actions(world.actions, rule.channels, rule.actions)[actions]
            eligible = rule.eligible(population.segment, population.features["lifecycle"])
            assert not (chosen & ~eligible).any()
        env.step(actions)
    history = np.stack(taken)  # (weeks, N); the starting customers had no contact before
    for cap in contact_rules.caps:  # brute force: any window_weeks weeks hold <= max
        counted = cap.counted(world.actions)[history]
        for t in range(history.shape[0]):
            window = counted[max(0, t - cap.window_weeks + 1) : t + 1].sum(axis=0)
            assert (window <= cap.max).all(), (cap, t)


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rules=rule_sets)
def test_no_policy_chooses_what_the_rules_forbid(tmp_path: Path, rules: RulesConfig) -> None:
    """For random rule sets, the trained agent, the optimum and every baseline, evaluated
    under the rules, never choose an action the guard would veto."""
    out = tmp_path / f"run-{abs(hash(str(rules)))}"
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = train_config(
            compose("train", overrides=[*TINY, *_overrides(rules), f"output_dir={out}"])
        )
    result = train(cfg)
    table = result.table
    overall = table[table["segment"] == "all"] if "segment" in table else table
    assert set(overall["policy"]) >= {"optimum", "staff_rules", "random", "myopic"}
    assert (overall["forbidden_per_customer"] == 0).all(), overall[
        ["policy", "forbidden_per_customer"]
    ]


def test_rules_the_world_cannot_follow_stop_the_training(tmp_path: Path) -> None:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = train_config(
            compose(
                "train",
                overrides=[
                    *TINY,
                    "+simulator.rules.frequency_caps.sms=1",
                    f"output_dir={tmp_path}",
                ],
            )
        )
    with pytest.raises(
        ConfigError, match=r"simulator.rules.frequency_caps caps channel\(s\) \['sms'\]"
    ):
        train(cfg)


def test_a_weekly_capacity_is_priced_for_training(tmp_path: Path) -> None:
    """With simulator.rules.capacity the agent learns in the priced world (the price found so
    that the optimum keeps the capacity's weekly share) and is evaluated in the real one."""
    overrides = [
        *TINY,
        "+simulator.rules.capacity={personal_call: 20}",
        "simulator.rules.capacity_customers=1000",
        f"output_dir={tmp_path}",
    ]
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = train_config(compose("train", overrides=overrides))
    world = _prepare_world(cfg)
    assert world.prices is not None
    call = world.spec.actions.names.index("personal_call")
    assert world.prices.unconstrained["personal_call"] > 0.02
    assert world.prices.shares["personal_call"] <= 0.02
    price = world.prices.prices["personal_call"]
    assert world.trained_in.actions.costs[call] == pytest.approx(
        world.spec.actions.costs[call] + price
    )
    result = train(cfg)
    assert result.model_path.exists()
    overall = result.table[result.table["segment"] == "all"]
    assert (overall["forbidden_per_customer"] == 0).all()
