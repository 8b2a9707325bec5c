"""The ground-truth worlds a closed loop lives in, behind one interface.

:class:`~journeyopt.loop.closed_loop.ClosedLoop` serves a population week by week through the
serving scorer and keeps the truth; what it needs of the world is :class:`TruthWorld`:

- ``history(rng)``: simulate the customers' past under today's practice (recorded for the raw
  logs) and return their state at the first served week;
- ``features(state)`` and ``segment_labels``: what the scorer sees of them (the panel's features
  of :func:`journeyopt.panel.state.state_features`, the customers' type label on record);
- ``step(state, actions, week, week_of_year, rng)``: one week from the actions requested
  (the world's own rules may forbid some), pure; the world draws a fixed block of random numbers
  per customer whatever the actions, so the loop's counterfactual twin, stepped with a copy of
  the real week's generator, lives the same life wherever its actions are the same (common
  random numbers); ``serve(...)`` is the same step for the real customers, recorded for the logs;
- ``write_logs(folder, weeks)``: the raw logs so far in the world's own source format;
- ``serving_world(loop_week)``: the world as serving sees it (catalogue, channels, features,
  customer types), for today's practice written as rules; ``expected_rewards``: the true
  expected reward of every action this week (the myopic effect of a decision);
  ``regime(loop_week)``.

Two implementations: :class:`CoworkingTruth` (the coworking world of :mod:`journeyopt.sim.dynamics`,
optionally with a regime change, raw logs in the coworking export format) and
:class:`ShopTruth` (the roastery of :mod:`journeyopt.sim.shop`, outside the calibrated family,
raw logs in the roastery's export format, :mod:`journeyopt.sim.shop_logs`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from journeyopt.agents.baselines import expected_rewards as world_expected_rewards
from journeyopt.agents.policy import Observation
from journeyopt.errors import ConfigError
from journeyopt.panel.state import CustomerState, FeatureSpec, advance, state_features
from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import sample_outcome
from journeyopt.sim.logs import Decisions, GeneratedLogs, Simulation, simulate, week_events
from journeyopt.sim.logs import write_logs as write_coworking_logs
from journeyopt.sim.population import Customers, Events
from journeyopt.sim.practice import Practice
from journeyopt.sim.regime import RegimeChange, changed_world, world_in_week
from journeyopt.sim.render import RawTables, render_tables
from journeyopt.sim.shop import (
    ShopOutcome,
    ShopSpec,
    ShopState,
    expected_reward,
    guard,
    next_state,
    responses,
    step,
)
from journeyopt.sim.shop_eval import RefundBook, observable_world, seed_panel, week_activity
from journeyopt.sim.shop_logs import (
    ShopRecords,
    render_shop_logs,
    simulate_shop_logs,
    write_shop_logs,
)
from journeyopt.sim.world import PATTERN_WEEKS, WorldSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]
S = TypeVar("S")


@dataclass(frozen=True)
class WorldWeek(Generic[S]):
    """One week of ``N`` customers in a truth world.

    Attributes:
        state: The customers' state at the start of the next week.
        actions: (N,) actions carried out (the world's rules may have replaced requested ones
            by ``none``).
        reward: (N,) reward of the week (margin net of discounts and refunds minus contact
            cost), currency.
    """

    state: S
    actions: IntArray
    reward: Float


class TruthWorld(Protocol[S]):
    """A ground-truth world a closed loop serves (see the module docstring); ``S`` is the
    world's state of its ``N`` customers."""

    @property
    def customer_ids(self) -> NDArray[np.object_]:
        """(N,) the customers' ids in the world's raw logs."""
        ...

    @property
    def segment_labels(self) -> NDArray[np.object_]:
        """(N,) the customer type on record (a name of ``serving_world``'s segments)."""
        ...

    @property
    def origin(self) -> pd.Timestamp:
        """Monday 00:00 UTC of week 0 of the history."""
        ...

    def history(self, rng: np.random.Generator) -> tuple[S, int]:
        """Simulate and record the history under today's practice; the state at the first
        served week and its week index (weeks since ``origin``)."""
        ...

    def features(self, state: S) -> dict[str, NDArray[np.generic]]:
        """The panel features of the customers in ``state``."""
        ...

    def step(
        self, state: S, actions: IntArray, week: int, week_of_year: int, rng: np.random.Generator
    ) -> WorldWeek[S]:
        """One week (index ``week`` since ``origin``) from (N,) requested ``actions``; pure."""
        ...

    def serve(
        self,
        state: S,
        actions: IntArray,
        propensity: Float,
        week: int,
        week_of_year: int,
        rng: np.random.Generator,
    ) -> WorldWeek[S]:
        """:meth:`step` for the real customers, recorded for the raw logs with the logged
        (N,) ``propensity`` of each requested action."""
        ...

    def write_logs(self, folder: Path, weeks: int) -> None:
        """The raw logs of the first ``weeks`` weeks into ``folder`` (replaced)."""
        ...

    def serving_world(self, loop_week: int) -> WorldSpec:
        """The world in served week ``loop_week`` as serving sees it."""
        ...

    def expected_rewards(self, state: S, week: int, week_of_year: int) -> Float:
        """(N, A) the true expected reward of every action this week, currency."""
        ...

    def regime(self, loop_week: int) -> str:
        """``before`` or ``after`` the world's regime change in served week ``loop_week``."""
        ...


def counting_everything(world: WorldSpec) -> WorldSpec:
    """``world`` whose customer state also counts every feature a served world's discrete
    summary may read (a contact pattern as long as any summary keeps, per channel too, the
    last contact's action, the previous gap, each action's weeks since, the lifetime counts):
    the closed loop hands the truth's features to whichever world is served, as serving
    would read them off the logs. Features only: the world's summary, dynamics and draws are
    unchanged."""
    contacts = world.actions.names[1:]
    spec = replace(
        world.features,
        rule_windows=tuple(dict.fromkeys((*world.features.rule_windows, max(PATTERN_WEEKS)))),
        rule_actions=tuple(dict.fromkeys((*contacts, *world.features.rule_actions))),
        recent_contacts=True,
        conversion_gap=True,
        action_recency=True,
        lifetime_counts=True,
    )
    return replace(world, features=spec)


class CoworkingTruth:
    """The coworking world (optionally changing in a served week) as a :class:`TruthWorld`;
    its state is the panel state itself (the world responds to its discrete summary).

    Args:
        world: The ground-truth world before any change.
        change: The regime change, or None.
        history: How the history under today's practice is generated (customers, weeks,
            start date, exploration; ``mess`` should be off).
    """

    def __init__(self, world: WorldSpec, change: RegimeChange | None, history: GenerateConfig):
        self.world = counting_everything(world)
        self.change = change
        self.changed = changed_world(self.world, change) if change is not None else self.world
        self.history_cfg = history
        self._customers: Customers | None = None
        self._events: list[Events] = []
        self._decisions: list[Decisions] = []
        self._origin = history.start

    @property
    def customers(self) -> Customers:
        """The customers of the history (their true type ``segment``)."""
        if self._customers is None:
            raise RuntimeError("no history yet: call history(rng) first")
        return self._customers

    @property
    def customer_ids(self) -> NDArray[np.object_]:
        return np.array([f"P{i:06d}" for i in range(self.customers.n)], dtype=object)

    @property
    def segment_labels(self) -> NDArray[np.object_]:
        return np.array(self.world.segment_names, dtype=object)[self.customers.segment]

    @property
    def origin(self) -> pd.Timestamp:
        return self._origin

    def world_in(self, loop_week: int) -> WorldSpec:
        """The true world in force in served week ``loop_week``."""
        return world_in_week(self.world, self.changed, self.change, loop_week)

    def history(self, rng: np.random.Generator) -> tuple[CustomerState, int]:
        sim = simulate(self.world, self.history_cfg, rng)
        self._customers, self._origin = sim.customers, sim.origin
        self._events, self._decisions = [sim.events], [sim.decisions]
        return sim.final_state, sim.weeks

    def features(self, state: CustomerState) -> dict[str, NDArray[np.generic]]:
        return state_features(state, self.world.features)

    def _outcome(
        self, state: CustomerState, actions: IntArray, week: int, woy: int, rng: np.random.Generator
    ) -> tuple[WorldSpec, WorldWeek[CustomerState], Events]:
        world = self.world_in(week - self.history_cfg.weeks)
        summary = summarise(self.features(state), self.customers.segment, world)
        out = sample_outcome(world, summary, actions, woy, rng)
        step_ = WorldWeek(advance(state, out.activity), out.actions, out.reward)
        return world, step_, week_events(world, week, out)

    def step(
        self,
        state: CustomerState,
        actions: IntArray,
        week: int,
        week_of_year: int,
        rng: np.random.Generator,
    ) -> WorldWeek[CustomerState]:
        return self._outcome(state, actions, week, week_of_year, rng)[1]

    def serve(
        self,
        state: CustomerState,
        actions: IntArray,
        propensity: Float,
        week: int,
        week_of_year: int,
        rng: np.random.Generator,
    ) -> WorldWeek[CustomerState]:
        _, out, events = self._outcome(state, actions, week, week_of_year, rng)
        self._events.append(events)
        rows = np.arange(actions.shape[0])
        self._decisions.append(Decisions(rows, np.full(rows.shape[0], week), actions, propensity))
        return out

    def write_logs(self, folder: Path, weeks: int) -> None:
        cfg = replace(self.history_cfg, weeks=weeks)
        sim = Simulation(
            customers=self.customers,
            events=Events.concat(self._events),
            decisions=Decisions(*(np.concatenate(x) for x in zip(*self._decisions, strict=True))),
            reward=np.zeros(self.customers.n),
            final_state=CustomerState.new(self.world.features, 0, np.zeros(0, np.int64)),
            origin=self._origin,
            weeks=weeks,
        )
        tables, truth = render_tables(self.world, sim, cfg, np.random.default_rng(weeks))
        stable = {ref: f"P{person:06d}" for ref, person in truth.person_of_ref.items()}
        tables = RawTables(
            *(_stable_refs(getattr(tables, f.name), stable) for f in fields(RawTables))
        )
        write_coworking_logs(GeneratedLogs(tables, truth, sim), folder, overwrite=True)

    def serving_world(self, loop_week: int) -> WorldSpec:
        return self.world_in(loop_week)

    def expected_rewards(self, state: CustomerState, week: int, week_of_year: int) -> Float:
        world = self.world_in(week - self.history_cfg.weeks)
        seen = Observation(self.features(state), self.customers.segment, week_of_year, week)
        return world_expected_rewards(world, seen)

    def regime(self, loop_week: int) -> str:
        changed = self.change is not None and self.world_in(loop_week) is self.changed
        return "after" if changed else "before"


def _stable_refs(table: pa.Table, stable: dict[str, str]) -> pa.Table:
    """``table`` with its ``customer_ref`` column mapped to the stable references."""
    refs = table.column("customer_ref").to_pylist()
    mapped = pa.array([stable.get(r, r) for r in refs], pa.string())
    return table.set_column(table.schema.get_field_index("customer_ref"), "customer_ref", mapped)


@dataclass(frozen=True)
class ShopHistory:
    """How a shop's history under today's practice is simulated
    (:func:`journeyopt.sim.shop_logs.simulate_shop_logs`).

    Attributes:
        practice: Today's practice (rules over the panel features).
        n_customers: Customers.
        weeks: Logged weeks under the practice.
        exploration: Share of uniformly explored decisions, in [0, 1].
        start: Monday (ISO date) of the first logged week.
        burn_in_weeks: Weeks without marketing before the logged weeks.
    """

    practice: Practice
    n_customers: int = 2000
    weeks: int = 104
    exploration: float = 0.12
    start: str = "2024-01-01"
    burn_in_weeks: int = 20

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.weeks < 1 or self.burn_in_weeks < 0:
            raise ConfigError(
                "shop history: n_customers and weeks must be >= 1, burn_in_weeks >= 0, got "
                f"{self.n_customers}, {self.weeks}, {self.burn_in_weeks}"
            )
        if not 0.0 <= self.exploration <= 1.0:
            raise ConfigError(f"shop history: exploration must be in [0, 1]: {self.exploration}")


@dataclass(frozen=True)
class ShopLife:
    """The state of a shop's ``N`` customers: the truth and what the panel knows.

    Attributes:
        true: The true state (latent type, recency, contact bits, pending effect, opt-out).
        panel: The panel state built from the activity the export shows.
        refunds: Refunds of served weeks' orders the export books in later weeks (None:
            none due).
    """

    true: ShopState
    panel: CustomerState
    refunds: RefundBook | None = None


def replay_shop_records(spec: ShopSpec, records: ShopRecords, features: FeatureSpec) -> ShopLife:
    """The customers' state after the simulated history ``records``: every week's orders,
    clicks, unsubscribes and sends replayed through the world's deterministic transition
    (:func:`journeyopt.sim.shop.next_state`) and the panel's ``advance``, from the last order
    before the history on, exactly as :func:`~journeyopt.sim.shop_logs.simulate_shop_logs`
    stepped them."""
    n, cap = records.n_customers, spec.recency_cap_weeks
    seed = records.orders[records.orders["week"] < cap]
    last = np.zeros(n, np.int64)
    last[seed["customer"].to_numpy()] = seed["week"].to_numpy()
    zeros = np.zeros(n, np.int64)
    true = ShopState(records.type.astype(np.int64), cap - last, zeros, zeros.copy(), zeros.copy())
    panel = seed_panel(spec, true, features)
    by_week = {
        name: frame.groupby("week")
        for name, frame in (
            ("orders", records.orders),
            ("clicks", records.clicks),
            ("optouts", records.optouts),
            ("sends", records.sends),
        )
    }
    for t in range(cap, records.weeks):
        week = {k: g.get_group(t) if t in g.groups else None for k, g in by_week.items()}
        out = _replayed_outcome(n, week)
        true = next_state(spec, true, out.actions, out.purchased, out.opted_out)
        panel = advance(panel, week_activity(spec, out))
    # the export's values: the orders' amounts paid (the seed orders' too, which the seeded
    # panel valued at their type's mean) net of the refunds booked within the record
    paid = np.bincount(records.orders["customer"], records.orders["paid"], minlength=n)
    back = records.refunds[records.refunds["week"] < records.weeks]
    refunded = np.bincount(back["customer"], back["amount"], minlength=n)
    return ShopLife(true, replace(panel, revenue=(paid - refunded).astype(np.float64)))


def _replayed_outcome(n: int, week: dict[str, pd.DataFrame | None]) -> ShopOutcome:
    """One recorded week of ``n`` customers as a :class:`ShopOutcome` (what the transition
    and the panel read; reward and refunds zero)."""
    actions, paid, value = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    purchased, clicked, opted = (np.zeros(n, np.bool_) for _ in range(3))
    if (sends := week["sends"]) is not None:
        actions[sends["customer"].to_numpy()] = sends["action"].to_numpy()
    if (orders := week["orders"]) is not None:
        rows = orders["customer"].to_numpy()
        purchased[rows] = True
        paid[rows], value[rows] = orders["paid"].to_numpy(), orders["list_value"].to_numpy()
    if (clicks := week["clicks"]) is not None:
        clicked[clicks["customer"].to_numpy()] = True
    if (optouts := week["optouts"]) is not None:
        opted[optouts["customer"].to_numpy()] = True
    none = np.zeros(n, np.int64)
    return ShopOutcome(actions, purchased, value, paid, purchased & False, none, clicked, opted,
                       np.zeros(n))  # fmt: skip


class ShopTruth:
    """A shop world (the roastery) as a :class:`TruthWorld`: the true state beside the panel
    state the export gives, raw logs in the shop's export format (customers ``K-000001``...).

    Refunds fall one or two weeks after their order; those of the history's last weeks that
    fall after it are not in the simulated record and so not in the logs (the truth's rewards
    count them).

    Args:
        spec: The shop world.
        history: How the history is simulated.
        gamma: Discount of the refund term in a week's reward (1: a refund reverses its
            order's margin in full).
    """

    def __init__(self, spec: ShopSpec, history: ShopHistory, gamma: float = 1.0) -> None:
        self.spec = spec
        self.history_cfg = history
        self.gamma = gamma
        self.world = observable_world(spec)
        self.records: ShopRecords | None = None
        self._served: dict[str, list[pd.DataFrame]] = {
            k: [] for k in ("orders", "refunds", "clicks", "optouts", "sends")
        }

    def _history_records(self) -> ShopRecords:
        if self.records is None:
            raise RuntimeError("no history yet: call history(rng) first")
        return self.records

    @property
    def customer_ids(self) -> NDArray[np.object_]:
        n = self._history_records().n_customers
        return np.char.mod("K-%06d", np.arange(1, n + 1)).astype(object)

    @property
    def segment_labels(self) -> NDArray[np.object_]:
        labels = np.asarray(self.spec.acquisition_labels, dtype=object)
        return labels[self._history_records().label]

    @property
    def origin(self) -> pd.Timestamp:
        return self._history_records().history_start

    def history(self, rng: np.random.Generator) -> tuple[ShopLife, int]:
        h = self.history_cfg
        self.records = simulate_shop_logs(
            self.spec, h.practice, h.n_customers, h.weeks, h.exploration, rng, h.start,
            h.burn_in_weeks,
        )  # fmt: skip
        return replay_shop_records(self.spec, self.records, self.world.features), self.records.weeks

    def features(self, state: ShopLife) -> dict[str, NDArray[np.generic]]:
        return state_features(state.panel, self.world.features)

    def _outcome(
        self, state: ShopLife, actions: IntArray, week_of_year: int, rng: np.random.Generator
    ) -> tuple[WorldWeek[ShopLife], ShopOutcome]:
        true, out = step(self.spec, state.true, actions, week_of_year, rng, self.gamma)
        book = state.refunds or RefundBook.empty(self.spec, state.true.n)
        booked, book = book.week(out)  # the refunds the export books this week
        panel = advance(state.panel, week_activity(self.spec, out, refunds=booked))
        life = ShopLife(true, panel, book)
        return WorldWeek(life, out.actions, out.reward), out

    def step(
        self,
        state: ShopLife,
        actions: IntArray,
        week: int,
        week_of_year: int,
        rng: np.random.Generator,
    ) -> WorldWeek[ShopLife]:
        return self._outcome(state, actions, week_of_year, rng)[0]

    def serve(
        self,
        state: ShopLife,
        actions: IntArray,
        propensity: Float,
        week: int,
        week_of_year: int,
        rng: np.random.Generator,
    ) -> WorldWeek[ShopLife]:
        result, out = self._outcome(state, actions, week_of_year, rng)
        self._record(week, out, propensity)
        return result

    def _record(self, week: int, out: ShopOutcome, propensity: Float) -> None:
        """Append the week's orders, refunds, clicks, unsubscribes and sends (the columns of
        :class:`~journeyopt.sim.shop_logs.ShopRecords`)."""
        bought, back = np.flatnonzero(out.purchased), np.flatnonzero(out.refunded)
        sent = np.flatnonzero(out.actions > 0)
        served = self._served
        served["orders"].append(pd.DataFrame({"customer": bought, "week": week,
            "list_value": out.list_value[bought], "paid": out.paid[bought]}))  # fmt: skip
        served["refunds"].append(pd.DataFrame({"customer": back,
            "week": week + out.refund_lag[back], "amount": out.paid[back]}))  # fmt: skip
        for name, done in (("clicks", out.clicked), ("optouts", out.opted_out)):
            rows = np.flatnonzero(done)
            served[name].append(pd.DataFrame({"customer": rows, "week": np.full(rows.size, week)}))
        served["sends"].append(pd.DataFrame({"customer": sent, "week": week,
            "action": out.actions[sent], "propensity": propensity[sent]}))  # fmt: skip

    def records_until(self, weeks: int) -> ShopRecords:
        """The history and the served weeks as one record of the first ``weeks`` weeks
        (refunds due later left out)."""
        base = self._history_records()
        parts = {
            name: pd.concat([getattr(base, name), *frames], ignore_index=True)
            for name, frames in self._served.items()
        }
        parts = {name: frame[frame["week"] < weeks].reset_index(drop=True)
                 for name, frame in parts.items()}  # fmt: skip
        return replace(base, weeks=weeks, **parts)

    def write_logs(self, folder: Path, weeks: int) -> None:
        records = self.records_until(weeks)
        export = render_shop_logs(self.spec, records, np.random.default_rng(weeks))
        write_shop_logs(export, folder, overwrite=True)

    def serving_world(self, loop_week: int) -> WorldSpec:
        return self.world

    def expected_rewards(self, state: ShopLife, week: int, week_of_year: int) -> Float:
        n, n_actions = state.true.n, self.spec.actions.n_actions
        rewards = np.empty((n, n_actions))
        for a in range(n_actions):
            act = guard(self.spec, state.true, np.full(n, a, np.int64))
            r = responses(self.spec, state.true, act, week_of_year)
            rewards[:, a] = expected_reward(self.spec, state.true, act, r, self.gamma)
        return rewards

    def regime(self, loop_week: int) -> str:
        return "before"
