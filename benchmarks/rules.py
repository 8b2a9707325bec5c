"""Contact rules through the serving guard: 1 M scored decisions, random rule sets and
customers, violations counted by an independent check (must be 0), and the time it takes.

    python benchmarks/rules.py --decisions 1000000 --batch 10000
    python benchmarks/run.py rules

Every batch draws a new rule set (caps over all contacts, channels or actions, each with its own
window; per-channel shorthand caps; a cool-down; a minimum gap; quiet weeks; eligibility by
customer type and lifecycle stage; weekly capacities), a new scorer under it, a random week
and random customers (features, opt-outs, customer types, unknown customers), and scores them
with a policy that ignores the masks (its choice is random), with a random control-group
share and exploration share. Each decision is then checked against the rules by this file's
own reading of them (from the features, the week of year and the customer type, not through
``ContactRules``): a contact on an opted-out channel, beyond a cap, inside the cool-down or the
minimum gap, in a quiet week, for a customer the action is not for, beyond a weekly capacity,
or for an unknown customer is a violation.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyopt.agents.sb3 import policy_spec
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.features import empty_features
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import (
    CapConfig,
    EligibilityConfig,
    QuietWeeksConfig,
    RulesConfig,
    shipped_practice,
)
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import WorldSpec, load_world


class RandomPolicy:
    """Random choices, among the allowed actions or (``rogue``) whatever the masks say: the
    guard must catch every forbidden one."""

    def __init__(self, world: WorldSpec, seed: int, rogue: bool) -> None:
        self.spec = policy_spec(world, observation_layout(world))
        self.pip_requirements = ()
        self._rng = np.random.default_rng(seed)
        self._n = world.actions.n_actions
        self._rogue = rogue

    def act(self, observations: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = observations.shape[0]
        scores = self._rng.random((n, self._n)) * (1.0 if self._rogue else masks)
        scores[:, 0] += 0.5  # none stays a common choice
        scores /= scores.sum(axis=1, keepdims=True)
        return scores.argmax(axis=1), scores


def random_rules(world: WorldSpec, rng: np.random.Generator, n_customers: int) -> RulesConfig:
    """A random rule set over ``world``'s channels, actions and customer types."""
    channels, actions = list(world.channels), list(world.actions.names[1:])

    def target() -> dict[str, list[str]]:
        kind = rng.integers(0, 3)
        if kind == 1:
            return {
                "channels": list(rng.choice(channels, rng.integers(1, len(channels) + 1), False))
            }
        if kind == 2:
            return {"actions": list(rng.choice(actions, rng.integers(1, 3), False))}
        return {}

    caps = []
    for _ in range(rng.integers(0, 4)):
        t = target()
        caps.append(
            CapConfig(
                int(rng.integers(0, 5)), int(rng.integers(1, 13)), over="" if t else "all", **t
            )
        )
    quiet = [
        QuietWeeksConfig(
            weeks=[int(w) for w in rng.integers(1, 54, rng.integers(1, 4))], **target()
        )
        for _ in range(rng.integers(0, 3))
    ]
    eligibility = []
    for _ in range(rng.integers(0, 3)):
        segments = list(rng.choice(world.segment_names, rng.integers(0, 3), False))
        stages = list(
            rng.choice(LIFECYCLE_STAGES[:3], rng.integers(0 if segments else 1, 3), False)
        )
        eligibility.append(EligibilityConfig(segments=segments, lifecycle=stages, **target()))
    capacity = {
        str(a): int(rng.integers(0, n_customers // 20 + 1))
        for a in rng.choice(actions, rng.integers(0, 3), False)
    }
    return RulesConfig(
        frequency_caps={c: int(rng.integers(0, 4)) for c in channels if rng.random() < 0.3},
        cooldown_weeks=int(rng.integers(0, 3)),
        total_cap=None if rng.random() < 0.7 else int(rng.integers(0, 5)),
        min_gap_weeks=int(rng.integers(0, 3)),
        caps=caps,
        quiet_weeks=quiet,
        eligibility=eligibility,
        capacity=capacity,
    )


def random_customers(scorer: Scorer, n: int, rng: np.random.Generator) -> CustomerBatch:
    """``n`` random customers of the scorer's world (its features include the rules' counts)."""
    world = scorer.world
    features = empty_features(world.features, n)
    for name in features:
        if name.startswith("opted_out_"):
            features[name] = rng.random(n) < 0.1
        elif name == "lifecycle":
            features[name] = rng.integers(0, 4, n).astype(np.int8)
        elif "contacts_" in name:
            features[name] = rng.poisson(0.6, n).astype(np.float64)
        elif name in ("recency_weeks", "monetary") or name.startswith("weeks_since_"):
            features[name] = np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 60, n))
        else:
            features[name] = rng.integers(0, 30, n).astype(np.float64)
    segment = rng.integers(-1, len(world.segment_names), n)
    ids = np.array([f"c{rng.integers(1 << 62)}-{i}" for i in range(n)], dtype=object)
    known = (segment >= 0) & (rng.random(n) < 0.95)
    as_of = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=int(rng.integers(0, 730)))
    return CustomerBatch(ids, features, segment, known, as_of)


def _targets(world: WorldSpec, channels: list[str], actions: list[str]) -> np.ndarray:
    names, chans = np.asarray(world.actions.names), np.asarray(world.actions.channels)
    out = (
        np.isin(names, actions)
        if actions
        else np.isin(chans, channels)
        if channels
        else names != ""
    )
    out[0] = False
    return out


def violations(rules: RulesConfig, scorer: Scorer, batch: CustomerBatch, actions: np.ndarray,
               week_of_year: int) -> int:  # fmt: skip
    """Decisions of ``actions`` that break ``rules``, read directly from the batch."""
    world, f, n = scorer.world, batch.features, batch.n
    contact = actions != 0
    chans = np.asarray(world.actions.channels)[actions]
    bad = contact & ~batch.known
    for ch in world.channels:
        bad |= contact & (chans == ch) & np.asarray(f[f"opted_out_{ch}"], bool)
    fw = world.features.fatigue_weeks
    caps = [CapConfig(k, fw + 1, channels=[c]) for c, k in rules.frequency_caps.items()]
    if rules.total_cap is not None:
        caps.append(CapConfig(rules.total_cap, fw + 1, over="all"))
    for cap in [*caps, *rules.caps]:
        w = cap.window_weeks - 1
        if w == 0:
            count = np.zeros(n)
        elif cap.actions:
            count = sum(np.asarray(f[f"action_contacts_{w}w_{a}"], float) for a in cap.actions)
        elif cap.channels:
            count = sum(np.asarray(f[f"contacts_{w}w_{c}"], float) for c in cap.channels)
        else:
            count = np.asarray(f[f"contacts_{w}w"], float)
        hit = _targets(world, cap.channels, cap.actions)[actions]
        bad |= hit & (count >= cap.max)
    if rules.cooldown_weeks:
        bad |= contact & (np.asarray(f["recency_weeks"], float) <= rules.cooldown_weeks)
    if rules.min_gap_weeks > 1:
        bad |= contact & (np.asarray(f["weeks_since_contact"], float) < rules.min_gap_weeks)
    for q in rules.quiet_weeks:
        if week_of_year in q.iso_weeks():
            bad |= _targets(world, q.channels, q.actions)[actions]
    stage = np.asarray(f["lifecycle"], int)
    for e in rules.eligibility:
        ok = np.ones(n, bool)
        if e.segments:
            ok &= np.isin(batch.segment, [world.segment_names.index(s) for s in e.segments])
        if e.lifecycle:
            ok &= np.isin(stage, [LIFECYCLE_STAGES.index(s) for s in e.lifecycle])
        bad |= _targets(world, e.channels, e.actions)[actions] & ~ok
    counts = np.bincount(actions, minlength=world.actions.n_actions)
    over = sum(
        max(0, int(counts[world.actions.names.index(a)]) - k) for a, k in rules.capacity.items()
    )
    return int(bad.sum()) + over


@dataclass(frozen=True)
class RulesResult:
    decisions: int
    contacts: int
    violations: int
    guarded: int
    capacity_demoted: int
    scoring_seconds: float
    total_seconds: float


def bench_rules_once(decisions: int, batch: int, seed: int) -> RulesResult:
    rng = np.random.default_rng(seed)
    world = load_world("coworking")
    done = contacts = bad = guarded = demoted = 0
    scoring = 0.0
    start = time.perf_counter()
    while done < decisions:
        n = min(batch, decisions - done)
        rules = random_rules(world, rng, n)
        settings = ServingConfig(
            rules=rules, holdout=HoldoutConfig(staff=shipped_practice("coworking"))
        )
        settings.holdout.control_share = float(rng.uniform(0.0, 0.5))
        settings.exploration.share = float(rng.choice([0.0, 0.1, 0.5]))
        policy = RandomPolicy(world, int(rng.integers(1 << 31)), rogue=bool(rng.random() < 0.5))
        model = ServedModel(policy, "b", "b", "1", "b", "", "")  # type: ignore[arg-type]
        t = time.perf_counter()
        scorer = Scorer(model, settings, world)
        customers = random_customers(scorer, n, rng)
        decided = scorer.score(customers)
        scoring += time.perf_counter() - t
        bad += violations(rules, scorer, customers, decided.actions, decided.week_of_year)
        contacts += int((decided.actions != 0).sum())
        guarded += int(decided.overridden.sum())
        demoted += int((decided.reasons == 8).any(axis=1).sum())
        done += n
    return RulesResult(done, contacts, bad, guarded, demoted, scoring, time.perf_counter() - start)


def bench_rules(decisions: int, batch: int, repeats: int) -> list[str]:
    """Markdown rows: one run per repeat (seeds 0, 1, ...)."""
    rows = [
        "| run | decisions | contacts | guarded | demoted by capacity | violations | scoring s "
        "| decisions/s | total s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in range(repeats):
        r = bench_rules_once(decisions, batch, run)
        rows.append(
            f"| {run} | {r.decisions:,} | {r.contacts:,} | {r.guarded:,} | {r.capacity_demoted:,} "
            f"| **{r.violations}** | {r.scoring_seconds:.1f} "
            f"| {r.decisions / r.scoring_seconds:,.0f} | {r.total_seconds:.1f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print("\n".join(bench_rules(args.decisions, args.batch, args.repeats)))


if __name__ == "__main__":
    main()
