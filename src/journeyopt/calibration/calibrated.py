"""The calibrated world: a :class:`~journeyopt.sim.world.WorldSpec` whose responses are fitted
tables, plus its bootstrap ensemble, and how it is written and read (open formats only).

Folder layout (``load_world(folder)`` reads it like any world)::

    world.yaml          the world: structure, economics, population and a readable
                        parametric summary of the fit; ``responses: responses.npz``;
                        ``format_version`` (:data:`~journeyopt.sim.world.WORLD_FORMAT_VERSION`)
    responses.npz       the point estimate's tables (FittedResponses)
    base.parquet        the starting population: the logs' customers at the as-of date
                        (``starting_population`` in world.yaml, :mod:`journeyopt.sim.starting`)
    members/<k>.npz     bootstrap ensemble members (same format)
    practice.npz        today's practice estimated from the logs (LoggedPractice)
    calibration.json    data fingerprint, resolved config, chosen penalties, identification;
                        ``format_version``, the folder's (a file of another is refused)

The parametric segment fields of a calibrated ``world.yaml`` (``prospect_logit``,
``action_logit``, ...) are *read off* the fitted tables at reference states (:func:`summarise_fit`)
so the fit can be compared with a ground truth at a glance; the dynamics use the tables only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from journeyopt.errors import ConfigError
from journeyopt.sim.discrete import DiscreteLayout, Summary, pattern_base
from journeyopt.sim.dynamics import sigmoid
from journeyopt.sim.optimum import OptimalPolicy, plans_pessimistically, solve_optimum
from journeyopt.sim.practice import PRACTICE_FILE
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.starting import StartingBase
from journeyopt.sim.world import (
    WORLD_FORMAT_VERSION,
    FittedResponses,
    PopulationSpec,
    WorldFormatError,
    WorldSpec,
    load_world,
    world_path,
)

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

RESPONSES_FILE = "responses.npz"
MEMBERS_DIR = "members"
META_FILE = "calibration.json"


@dataclass(frozen=True)
class CalibratedWorld:
    """A calibrated world and its bootstrap ensemble.

    Attributes:
        world: The point estimate (fitted on all customers).
        members: Ensemble members, each a world with the same structure and tables refitted
            on a bootstrap resample of customers.
        meta: JSON-able record: data fingerprint, resolved config, penalties, identification.
    """

    world: WorldSpec
    members: tuple[WorldSpec, ...]
    meta: Mapping[str, Any]

    @staticmethod
    def of(world: WorldSpec | CalibratedWorld) -> CalibratedWorld:
        """``world`` itself when it is a calibrated world with its ensemble and record, else
        ``world`` alone: no members and no record (its optimum planned plainly)."""
        return world if isinstance(world, CalibratedWorld) else CalibratedWorld(world, (), {})

    def sample(self, rng: np.random.Generator) -> WorldSpec:
        """One ensemble member drawn uniformly (draw one per episode to be robust to
        calibration error); the point estimate when there is no ensemble."""
        if not self.members:
            return self.world
        return self.members[int(rng.integers(len(self.members)))]

    @property
    def pessimism(self) -> float:
        """Standard deviations of the members' disagreement the world's optimum plans
        against (``calibration.pessimism`` recorded in ``calibration.json``; 0 for a world
        calibrated before it was recorded, planned plainly as it was then)."""
        return float(self.meta.get("planning", {}).get("pessimism", 0.0))

    @property
    def pessimistic(self) -> bool:
        """Whether :meth:`optimum` discounts any (state, action) (a positive
        :attr:`pessimism` and at least two members)."""
        return plans_pessimistically(len(self.members), self.pessimism)

    def optimum(
        self,
        horizon_weeks: int,
        gamma: float,
        weeks_of_year: IntArray | None = None,
        rules: ContactRules | None = None,
    ) -> OptimalPolicy:
        """The world's exact optimum as the product plans it: pessimistic by
        :attr:`pessimism` standard deviations of the members' disagreement
        (:func:`~journeyopt.sim.optimum.solve_optimum`)."""
        return solve_optimum(
            self.world,
            horizon_weeks,
            gamma,
            weeks_of_year,
            rules=rules,
            members=self.members,
            pessimism=self.pessimism,
        )

    def mapped(self, change: Callable[[WorldSpec], WorldSpec]) -> CalibratedWorld:
        """The world and every ensemble member changed alike by ``change`` (e.g. renamed
        segments, the features a set of rules reads), the same record."""
        return CalibratedWorld(
            change(self.world), tuple(change(m) for m in self.members), self.meta
        )

    def with_base(self, base: StartingBase) -> CalibratedWorld:
        """The world and every ensemble member starting from ``base``."""
        return self.mapped(lambda world: replace(world, base=base))

    def save(self, folder: Path) -> Path:
        """Write the folder described in the module docstring; returns ``world.yaml``."""
        folder.mkdir(parents=True, exist_ok=True)
        assert self.world.responses is not None
        self.world.responses.save(folder / RESPONSES_FILE)
        (folder / MEMBERS_DIR).mkdir(exist_ok=True)
        for k, member in enumerate(self.members):
            assert member.responses is not None
            member.responses.save(folder / MEMBERS_DIR / f"{k}.npz")
        if self.world.logged_practice is not None:
            self.world.logged_practice.save(folder / PRACTICE_FILE)
        path = folder / "world.yaml"
        header = (
            f"# Calibrated world {self.world.name!r}: written by journeyopt-calibrate.\n"
            "# Responses are the fitted tables in responses.npz; the segment parameters below\n"
            "# are a readable summary of that fit at reference states (see card.md);\n"
            "# fatigue_decay_weeks and engagement_decay_weeks are not used by fitted responses.\n"
        )
        mapping = world_to_dict(self.world)
        if self.world.base is not None:
            mapping["starting_population"] = self.world.base.save(folder, self.world.segment_names)
        path.write_text(header + yaml.safe_dump(mapping, sort_keys=False))
        kept = {k: v for k, v in self.meta.items() if k != "format_version"}
        meta = {"format_version": WORLD_FORMAT_VERSION, **kept}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return path

    @staticmethod
    def load(folder: Path | str) -> CalibratedWorld:
        """Read a folder written by :meth:`save`.

        Raises:
            WorldFormatError: ``calibration.json`` records another format than
                :data:`~journeyopt.sim.world.WORLD_FORMAT_VERSION` (one without one, written
                before it was recorded, is read).
        """
        path = world_path(folder)
        world = load_world(path)
        if world.responses is None:
            raise ConfigError(f"{path}: not a calibrated world (no responses file)")
        members = tuple(
            _with_responses(world, FittedResponses.load(p))
            for p in sorted((path.parent / MEMBERS_DIR).glob("*.npz"), key=lambda p: int(p.stem))
        )
        meta_path = path.parent / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        found = meta.get("format_version", WORLD_FORMAT_VERSION)
        if found != WORLD_FORMAT_VERSION:
            raise WorldFormatError(path.parent, found, f"in {META_FILE}")
        return CalibratedWorld(world, members, meta)


def _with_responses(world: WorldSpec, responses: FittedResponses) -> WorldSpec:
    """A copy of ``world`` with other response tables."""
    return replace(world, responses=responses)


def align_segments(world: WorldSpec, names: Sequence[str]) -> WorldSpec:
    """``world`` with its segments (and the segment digit of its state numbering) reordered to
    ``names`` (a permutation of its segment names), e.g. to run it beside a ground truth whose
    customers carry that world's segment indices."""
    if sorted(names) != sorted(world.segment_names):
        raise ValueError(f"segments {list(names)} are not a permutation of {world.segment_names}")
    order = [world.segment_names.index(n) for n in names]
    layout = DiscreteLayout.of(world)
    block = layout.n_states // layout.n_segments
    perm = np.concatenate([np.arange(k * block, (k + 1) * block) for k in order])
    r = world.responses
    assert r is not None
    responses = FittedResponses(
        convert_logit=r.convert_logit[perm],
        convert_season=r.convert_season,
        value=r.value[perm],
        engage_logit=r.engage_logit[perm],
        engage_season=r.engage_season,
        optout=r.optout[perm],
        actions_identified=r.actions_identified,
    )
    segments = tuple(world.segments[k] for k in order)
    base = world.base.with_segments(order) if world.base is not None else None
    return replace(world, segments=segments, responses=responses, base=base)


def world_to_dict(world: WorldSpec) -> dict[str, Any]:
    """The ``world.yaml`` mapping of a calibrated world (inverse of ``world_from_dict``)."""
    segments: dict[str, Any] = {}
    for seg in world.segments:
        segments[seg.name] = {
            "share": _round(seg.share),
            "prospect_logit": _round(seg.prospect_logit),
            "return_logit": _round(seg.return_logit),
            "lapsed_logit": _round(seg.lapsed_logit),
            "habit_decay_weeks": _round(seg.habit_decay_weeks),
            "loyalty_logit": _round(seg.loyalty_logit),
            "engagement_logit": _round(seg.engagement_logit),
            "engagement_value_lift": _round(seg.engagement_value_lift),
            "inquiry_rate": _round(seg.inquiry_rate),
            "kinds": {k: [_round(p), _round(m)] for k, (p, m) in seg.kinds.items()},
            "value_shape": _round(seg.value_shape),
            "action_logit": {a: _round(v) for a, v in seg.action_logit.items()},
            "action_engagement": {a: _round(v) for a, v in seg.action_engagement.items()},
            "optout": {a: _round(v) for a, v in seg.optout.items()},
            "fatigue_response": _round(seg.fatigue_response),
            "fatigue_optout": _round(seg.fatigue_optout),
            "company_sizes": {k: _round(v) for k, v in seg.company_sizes.items()},
        }
    pop = world.population
    return {
        "format_version": WORLD_FORMAT_VERSION,
        "name": world.name,
        "currency": world.currency,
        "channels": list(world.channels),
        "actions": {
            name: {"channel": ch, "cost": float(cost), "discount": float(rate)}
            for name, ch, cost, rate in zip(
                world.actions.names,
                world.actions.channels,
                world.actions.costs,
                world.actions.discounts,
                strict=True,
            )
        },
        "margin_rate": world.margin_rate,
        "fatigue_decay_weeks": world.fatigue_decay_weeks,
        "engagement_decay_weeks": world.engagement_decay_weeks,
        "engagement_kinds": dict(world.engagement_kinds),
        "segments": segments,
        "population": {
            "prospect": _round(pop.prospect),
            "active": _round(pop.active),
            "lapsed": _round(1.0 - _round(pop.prospect) - _round(pop.active)),
            "active_recency_weeks": list(pop.active_recency_weeks),
            "lapsed_recency_weeks": list(pop.lapsed_recency_weeks),
            "past_conversions_mean": _round(pop.past_conversions_mean),
        },
        "discrete": {
            "recency_cap_weeks": world.discrete.recency_cap_weeks,
            "conversions_cap": world.discrete.conversions_cap,
            "contact_cap_weeks": world.discrete.contact_cap_weeks,
            "engagement_cap_weeks": world.discrete.engagement_cap_weeks,
            "tenure_cap_weeks": world.discrete.tenure_cap_weeks,
            **_summary_components(world),
        },
        "features": {
            "frequency_weeks": world.features.frequency_weeks,
            "fatigue_weeks": world.features.fatigue_weeks,
            "engagement_weeks": world.features.engagement_weeks,
            "lapse_weeks": world.features.lapse_weeks,
            **(
                {
                    "rule_windows": list(world.features.rule_windows),
                    "rule_actions": list(world.features.rule_actions),
                    **({"recent_contacts": True} if world.features.recent_contacts else {}),
                }
                if world.features.rule_windows or world.features.rule_actions
                else {}
            ),
            **({"conversion_gap": True} if world.features.conversion_gap else {}),
            **({"action_recency": True} if world.features.action_recency else {}),
            **({"lifetime_counts": True} if world.features.lifetime_counts else {}),
        },
        "responses": RESPONSES_FILE,
        **({"practice": PRACTICE_FILE} if world.logged_practice is not None else {}),
        **(
            {"unsupported_actions": list(world.unsupported_actions)}
            if world.unsupported_actions
            else {}
        ),
        **(
            {"segment_value_cuts": [float(c) for c in world.segment_value_cuts]}
            if world.segment_value_cuts
            else {}
        ),
        **(
            {"segment_types": world.segment_types.as_dict()}
            if world.segment_types is not None
            else {}
        ),
    }


def _summary_components(world: WorldSpec) -> dict[str, Any]:
    """The optional summary components of ``world.discrete`` that are on (none: the file of a
    world without them is unchanged)."""
    d = world.discrete
    return {
        **({"contact_pattern_weeks": d.contact_pattern_weeks} if d.contact_pattern_weeks else {}),
        **({"contact_pattern_by_channel": True} if d.contact_pattern_by_channel else {}),
        **({"last_action": True} if d.last_action else {}),
        **(
            {"gap_cap_weeks": d.gap_cap_weeks, "gap_bin_weeks": d.gap_bin_weeks}
            if d.gap_cap_weeks
            else {}
        ),
        **({"rate_levels": d.rate_levels} if d.rate_levels else {}),
        **({"recency_bins_weeks": d.recency_bins_weeks} if d.recency_bins_weeks else {}),
        **({"lasting_actions": list(d.lasting_actions)} if d.lasting_actions else {}),
    }


def _round(x: float) -> float:
    return float(round(float(x), 6))


def reference_states(layout: DiscreteLayout, segment: int) -> dict[str, int]:
    """State indices of a segment's reference states (no contact or engagement for the caps'
    length, no opt-out): ``prospect``, ``returning`` (1 conversion, 1 week ago), ``lapsed`` (1
    conversion at the recency cap), ``loyal`` (2 conversions at the cap, if the cap allows),
    ``engaged`` (lapsed, engaged 1 week ago), ``fatigued`` (lapsed, contacted 1 week ago), and
    ``recency_<r>`` for every recency ``r``."""
    s = layout.spec

    def state(conv: int, rec: int, contact: int, engagement: int) -> int:
        summary = Summary(
            *(np.array([v], np.int64) for v in (segment, conv, rec, contact, engagement, 0))
        )
        return int(layout.encode(_contacted_once(summary, layout))[0])

    c_cap, e_cap, r_cap = s.contact_cap_weeks, s.engagement_cap_weeks, s.recency_cap_weeks
    refs = {
        "prospect": state(0, 0, c_cap, e_cap),
        "returning": state(1, 1, c_cap, e_cap),
        "lapsed": state(1, r_cap, c_cap, e_cap),
        "loyal": state(min(2, s.conversions_cap), r_cap, c_cap, e_cap),
        "engaged": state(1, r_cap, c_cap, 1),
        "fatigued": state(1, r_cap, 1, e_cap),
    }
    refs.update({f"recency_{r}": state(1, r, c_cap, e_cap) for r in range(1, r_cap + 1)})
    return refs


def habit_decay(curve: Float) -> float:
    """E-folding time, weeks, of ``curve`` (R,) (logits by recency ``1..R``) between its first
    and last value: least squares of ``log(share) = -(r - 1) / tau`` over the recencies where
    the share ``(curve - last) / (first - last)`` is in (0, 1)."""
    first, last = curve[0], curve[-1]
    if abs(first - last) < 1e-9:
        return 1.0
    share = (curve[:-1] - last) / (first - last)
    r = np.arange(curve.shape[0] - 1, dtype=np.float64)
    keep = (share > 0) & (share < 1) & (r > 0)
    if not keep.any():
        return 1.0
    slope = float(np.sum(r[keep] * np.log(share[keep])) / np.sum(r[keep] ** 2))
    return float(np.clip(-1.0 / slope if slope < 0 else 104.0, 0.1, 104.0))


def _contacted_once(summary: Summary, layout: DiscreteLayout) -> Summary:
    """``summary`` with the optional recent-contact components made consistent with its
    weeks since contact, as after a single contact (of the first contact action, or the first
    lasting action when the summary keeps them; through the first channel in a pattern by
    channel) that many weeks ago: a reference state the
    layout can number."""
    s = layout.spec
    contact = np.asarray(summary.contact, np.int64)
    recent = contact < s.contact_cap_weeks
    base = pattern_base(s, layout.n_channels)  # by channel: digit 1, the first channel
    pattern = np.where(contact <= s.contact_pattern_weeks, base ** np.maximum(contact - 1, 0), 0)
    return summary._replace(
        pattern=pattern.astype(np.int64),
        last_action=np.where(recent & s.last_action, 1, 0).astype(np.int64),
        lasting=contact if s.lasting_actions else 0,
    )


def _unfatigued(layout: DiscreteLayout, segment: int, visits: Float) -> Float:
    """(n,) weights of the segment's unfatigued states (contact at the cap, no opt-out): their
    calibration visits, or the lapsed reference state alone when none was visited."""
    states = layout.all_states()
    keep = (
        (states.segment == segment)
        & (states.contact == layout.spec.contact_cap_weeks)
        & (states.optout == 0)
    )
    weight = np.where(keep, visits, 0.0).astype(np.float64)
    if weight.sum() <= 0:
        weight[reference_states(layout, segment)["lapsed"]] = 1.0
    return weight


def summarise_fit(
    responses: FittedResponses,
    layout: DiscreteLayout,
    actions: Sequence[str],
    segment: int,
    visits: Float,
) -> dict[str, Any]:
    """The parametric segment fields read off the fitted tables: the organic ones at the
    segment's reference states (:func:`reference_states`), the contact ones averaged over the
    segment's unfatigued states weighted by calibration ``visits`` (n,); probabilities clipped
    to [0, 1]."""
    ref = reference_states(layout, segment)
    cl, el = responses.convert_logit, responses.engage_logit
    r_cap = layout.spec.recency_cap_weeks
    curve = np.array([cl[ref[f"recency_{r}"], 0] for r in range(1, r_cap + 1)])
    lapsed = ref["lapsed"]
    weight = _unfatigued(layout, segment, visits)
    block = layout.n_states // layout.n_segments
    # the same states one week after a contact: contact digit 1 instead of the cap
    every = layout.all_states()
    tired = layout.encode(
        _contacted_once(every._replace(contact=np.ones_like(every.contact)), layout)
    )
    states = np.flatnonzero(weight > 0)
    w = weight[states]
    assert states.min() >= segment * block
    base_engage = sigmoid(el[states, 0])
    contact = {}
    for a, name in enumerate(actions[1:], start=1):
        lift = float(np.average(cl[states, a] - cl[states, 0], weights=w))
        tired_lift = float(np.average(cl[tired[states], a] - cl[tired[states], 0], weights=w))
        engage = (sigmoid(el[states, a]) - base_engage) / np.maximum(1 - base_engage, 1e-12)
        optout = float(np.average(responses.optout[states, a], weights=w))
        tired_optout = float(np.average(responses.optout[tired[states], a], weights=w))
        contact[name] = {
            "logit": lift,
            "engagement": float(np.average(engage, weights=w)),
            "optout": optout,
            "fatigue": 1.0 - tired_lift / lift if abs(lift) > 1e-6 else 0.0,
            "fatigue_optout": tired_optout / max(optout, 1e-12) - 1.0,
        }

    def mean_of(key: str) -> float:
        return float(np.mean([c[key] for c in contact.values()])) if contact else 0.0

    return {
        "prospect_logit": float(cl[ref["prospect"], 0]),
        "return_logit": float(cl[ref["returning"], 0]),
        "lapsed_logit": float(cl[lapsed, 0]),
        "habit_decay_weeks": habit_decay(curve),
        "loyalty_logit": float(cl[ref["loyal"], 0] - cl[lapsed, 0]),
        "engagement_logit": float(cl[ref["engaged"], 0] - cl[lapsed, 0]),
        "engagement_value_lift": float(responses.value[ref["engaged"]] / responses.value[lapsed]),
        "inquiry_rate": float(np.average(base_engage, weights=w)),
        "action_logit": {k: c["logit"] for k, c in contact.items()},
        "action_engagement": {k: float(np.clip(c["engagement"], 0, 1)) for k, c in contact.items()},
        "optout": {k: float(np.clip(c["optout"], 0, 1)) for k, c in contact.items()},
        "fatigue_response": float(np.clip(mean_of("fatigue"), 0.0, 1.0)),
        "fatigue_optout": float(max(mean_of("fatigue_optout"), 0.0)),
        "reference_value": float(responses.value[lapsed]),
    }


def population_spec(n_conversions: IntArray, recency: Float, lapse_weeks: int) -> PopulationSpec:
    """The initial population estimated from customers' state at the end of the logs.

    Args:
        n_conversions: (K,) lifetime conversions.
        recency: (K,) weeks since the last conversion (NaN for prospects).
        lapse_weeks: Customers with recency above it are lapsed.
    """
    k = max(n_conversions.shape[0], 1)
    customer = n_conversions > 0
    rec = np.nan_to_num(recency, nan=0.0)
    active = customer & (rec <= lapse_weeks)
    lapsed = customer & ~active
    prospect_share = float(np.sum(~customer)) / k
    active_share = float(np.sum(active)) / k
    active_high = int(
        np.clip(np.percentile(rec[active], 95) if active.any() else 1, 1, lapse_weeks)
    )
    lapsed_low = max(lapse_weeks + 1, 1)
    lapsed_high = int(
        max(np.percentile(rec[lapsed], 95) if lapsed.any() else lapsed_low, lapsed_low)
    )
    past = float(np.mean(n_conversions[customer])) if customer.any() else 1.0
    prospect_share = round(prospect_share, 6)
    active_share = round(active_share, 6)
    return PopulationSpec(
        prospect=prospect_share,
        active=active_share,
        lapsed=1.0 - prospect_share - active_share,
        active_recency_weeks=(1, active_high),
        lapsed_recency_weeks=(lapsed_low, lapsed_high),
        past_conversions_mean=max(past, 1.0),
    )
