"""Raw logs of a shop world in the roastery's own export format.

The roastery's shop system and marketing tool export three files, all semicolon-separated with
a decimal comma (a German shop), timestamps ISO 8601 with the Berlin offset
(``2024-03-04T10:22:13+01:00``):

``shop_events.csv``
    ``event_uuid; customer_no; occurred_at; event_name; sku; qty; amount_eur``: one row per
    order line (``order_line``, several lines per order, one timestamp per order), one negative
    line per refund (``refund``, one or two weeks after the order, minus the amount paid),
    e-mail clicks (``email_click``) and unsubscribes from all marketing (``unsubscribe``). A
    re-exported batch repeats a few lines exactly.
``campaign_sends.csv``
    ``send_id; customer_no; sent_at; campaign_code; p_select``: one row per contact, with the
    marketing tool's own campaign codes and the logged probability that the selection chose it.
``customers.csv``
    ``customer_no; created_at; country; acquisition``: no customer type; the acquisition channel
    is only weakly informative about the latent type.

:func:`simulate_shop_logs` runs the world: every customer's last order before the history
(``1..W`` weeks before it), ``burn_in_weeks`` weeks without marketing, then ``weeks`` logged
weeks under today's practice (guarded by the all-channel rule) with ``exploration`` uniform
exploration among the allowed actions. :func:`write_shop_logs` renders and writes the files,
and beside them, when given, the truth's state of every customer week by week
(:class:`TrueStates`, ``true_states.npz``: not part of the export, it lets an evaluation start
the truth from the export's own customers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.outputs import staged_output_dir
from journeyopt.panel.state import advance
from journeyopt.panel.state import state_features as panel_features
from journeyopt.panel.weeks import week_of_year
from journeyopt.sim.behaviour import contact_rules, explore
from journeyopt.sim.practice import Practice
from journeyopt.sim.shop import ShopSpec, ShopState, allowed_actions, draw_population, guard, step
from journeyopt.sim.shop_eval import observable_world, seed_panel, week_activity

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

SHOP_FILES: tuple[str, ...] = ("shop_events.csv", "campaign_sends.csv", "customers.csv")
TRUE_STATES_FILE = "true_states.npz"
SKUS: tuple[str, ...] = ("ESP-250", "ESP-1000", "FIL-250", "FIL-1000", "DEC-250", "SAMPLER")
TIMEZONE = "Europe/Berlin"


def customer_numbers(n: int) -> NDArray[np.object_]:
    """(n,) the export's customer numbers of customers ``0..n-1`` (``K-000001``, ...)."""
    return np.char.mod("K-%06d", np.arange(1, n + 1)).astype(object)


@dataclass(frozen=True)
class TrueStates:
    """The truth's state of every customer at the start of each week of a simulated history.

    Attributes:
        history_start: Monday 00:00 UTC of week 0.
        first_week: Week index of the first stored week.
        type: (N,) latent type.
        weeks, history, pending, optout: (K, N) the state's other parts at the start of weeks
            ``first_week .. first_week + K - 1`` (see :class:`~journeyopt.sim.shop.ShopState`).
    """

    history_start: pd.Timestamp
    first_week: int
    type: IntArray
    weeks: NDArray[np.int8]
    history: NDArray[np.int8]
    pending: NDArray[np.int8]
    optout: NDArray[np.int8]

    @property
    def customer_no(self) -> NDArray[np.object_]:
        """(N,) the customers' numbers in the export."""
        return customer_numbers(int(self.type.shape[0]))

    def at(self, instant: pd.Timestamp | str) -> ShopState:
        """The state at the start of the week that starts at ``instant`` (a Monday 00:00 UTC,
        e.g. a calibrated world's as-of date); ValueError outside the stored weeks."""
        at = pd.Timestamp(instant)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        weeks, rest = divmod(at - self.history_start, pd.Timedelta(weeks=1))
        k = int(weeks) - self.first_week
        if rest != pd.Timedelta(0) or not 0 <= k < self.weeks.shape[0]:
            first = self.history_start + pd.Timedelta(weeks=self.first_week)
            last = first + pd.Timedelta(weeks=self.weeks.shape[0] - 1)
            raise ValueError(f"no true state at {at}: stored are the Mondays {first} to {last}")
        parts = (self.weeks[k], self.history[k], self.pending[k], self.optout[k])
        return ShopState(self.type.astype(np.int64), *(p.astype(np.int64) for p in parts))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            history_start=np.array(self.history_start.isoformat()),
            first_week=np.array(self.first_week),
            type=self.type,
            weeks=self.weeks,
            history=self.history,
            pending=self.pending,
            optout=self.optout,
        )

    @staticmethod
    def load(path: Path) -> TrueStates:
        with np.load(path) as f:
            return TrueStates(
                history_start=pd.Timestamp(str(f["history_start"])),
                first_week=int(f["first_week"]),
                type=f["type"].astype(np.int64),
                weeks=f["weeks"],
                history=f["history"],
                pending=f["pending"],
                optout=f["optout"],
            )


def _stack(states: Sequence[ShopState], history_start: pd.Timestamp, first: int) -> TrueStates:
    def part(name: str) -> NDArray[np.int8]:
        return np.stack([getattr(s, name) for s in states]).astype(np.int8)

    return TrueStates(
        history_start,
        first,
        states[0].type,
        part("weeks"),
        part("history"),
        part("pending"),
        part("optout"),
    )


@dataclass(frozen=True)
class ShopRecords:
    """The clean record of a simulated shop history; weeks count from the history's start.

    Attributes:
        n_customers: ``N``.
        label: (N,) acquisition label index into ``spec.acquisition_labels``.
        type: (N,) latent type (kept for checks; never written).
        orders: customer, week, list value, paid amount of every order.
        refunds: customer, week, amount (positive) of every refund.
        clicks, optouts: customer, week of every e-mail click and unsubscribe.
        sends: customer, week, action, propensity of every contact.
        history_start: Monday 00:00 UTC of week 0.
        first_logged_week: Week index of the first logged week.
        weeks: Total number of weeks.
        reward: (N,) undiscounted reward per customer over the logged weeks, currency.
        truth: The true state at the start of every week from the first simulated one
            (``spec.recency_cap_weeks``) to the week after the last (never written to the
            export).
    """

    n_customers: int
    label: IntArray
    type: IntArray
    orders: pd.DataFrame
    refunds: pd.DataFrame
    clicks: pd.DataFrame
    optouts: pd.DataFrame
    sends: pd.DataFrame
    history_start: pd.Timestamp
    first_logged_week: int
    weeks: int
    reward: Float
    truth: TrueStates


def simulate_shop_logs(
    spec: ShopSpec,
    practice: Practice,
    n_customers: int,
    weeks: int,
    exploration: float,
    rng: np.random.Generator,
    start: str = "2024-01-01",
    burn_in_weeks: int = 20,
) -> ShopRecords:
    """Simulate the history behind the logs (see the module docstring).

    Args:
        spec: The shop world.
        practice: Today's practice (rules over the panel features; checked against
            :func:`~journeyopt.sim.shop_eval.observable_world`).
        n_customers: ``N``.
        weeks: Logged weeks under the practice.
        exploration: Share of uniformly explored decisions (logged propensities).
        rng: Source of randomness.
        start: Monday of the first logged week (ISO date).
        burn_in_weeks: Weeks without marketing before the logged weeks (their orders are in the
            export: the shop's history before the marketing tool).
    """
    world = observable_world(spec)
    practice = practice.check(world, "practice")
    rules = contact_rules(world)
    cap = spec.recency_cap_weeks
    first_logged = cap + burn_in_weeks
    history_start = pd.Timestamp(start, tz="UTC") - pd.Timedelta(weeks=first_logged)
    if history_start.day_of_week != 0:
        raise ValueError(f"start must be a Monday, got {start}")
    true, label = draw_population(spec, n_customers, rng)
    sorted_label = np.argsort(np.argsort(spec.acquisition_labels))[label]
    panel = seed_panel(spec, true, world.features)
    seed_value = spec.params.order_value[true.type] * rng.gamma(8.0, 1.0 / 8.0, n_customers)
    orders = [(np.arange(n_customers), cap - true.weeks, seed_value, np.round(seed_value, 2))]
    refunds, clicks, optouts, sends = [], [], [], []
    total = first_logged + weeks
    woy = week_of_year(history_start, np.arange(total))
    reward = np.zeros(n_customers)
    states: list[ShopState] = []
    for t in range(cap, total):
        states.append(true)
        logged = t >= first_logged
        if logged:
            features = panel_features(panel, world.features)
            calendar = t - first_logged
            staff = guard(
                spec, true, practice.actions(world, features, sorted_label, calendar, rules)
            )
            allowed = allowed_actions(spec, true) & rules.masks(features)
            actions, propensity = explore(staff, allowed, exploration, rng)
        else:
            actions = np.zeros(n_customers, np.int64)
            propensity = np.ones(n_customers)
        true, out = step(spec, true, actions, int(woy[t]), rng, 1.0)
        panel = advance(panel, week_activity(spec, out))
        if logged:
            reward += out.reward
        bought = np.flatnonzero(out.purchased)
        orders.append((bought, np.full(bought.size, t), out.list_value[bought], out.paid[bought]))
        back = np.flatnonzero(out.refunded)
        refunds.append((back, t + out.refund_lag[back], out.paid[back]))
        clicked = np.flatnonzero(out.clicked)
        clicks.append((clicked, np.full(clicked.size, t)))
        opted = np.flatnonzero(out.opted_out)
        optouts.append((opted, np.full(opted.size, t)))
        sent = np.flatnonzero(out.actions > 0)
        sends.append((sent, np.full(sent.size, t), out.actions[sent], propensity[sent]))
    states.append(true)

    def frame(parts: Sequence[Sequence[NDArray[Any]]], names: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame({n: np.concatenate([p[k] for p in parts]) for k, n in enumerate(names)})

    refund_frame = frame(refunds, ("customer", "week", "amount"))
    return ShopRecords(
        n_customers=n_customers,
        label=label,
        type=true.type,
        orders=frame(orders, ("customer", "week", "list_value", "paid")),
        refunds=refund_frame[refund_frame["week"] < total].reset_index(drop=True),
        clicks=frame(clicks, ("customer", "week")),
        optouts=frame(optouts, ("customer", "week")),
        sends=frame(sends, ("customer", "week", "action", "propensity")),
        history_start=history_start,
        first_logged_week=first_logged,
        weeks=total,
        reward=reward,
        truth=_stack(states, history_start, cap),
    )


def _event_rows(
    customers: NDArray[np.object_], ts: Any, name: str, amount: Any = ""
) -> pd.DataFrame:
    """Rows of the shop's event file that are not order lines (no SKU, no quantity)."""
    return pd.DataFrame(
        {"customer_no": customers, "ts": ts, "event_name": name, "sku": "", "qty": "",
         "amount_eur": amount}
    )  # fmt: skip


def _stamp(ts: pd.Series) -> pd.Series:
    """UTC instants as ISO 8601 strings with the Berlin offset (``...T10:22:13+01:00``)."""
    local = pd.DatetimeIndex(ts).tz_convert(TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S%z")
    text = pd.Series(local, index=ts.index)
    return text.str[:-2] + ":" + text.str[-2:]


def _amount(x: Float) -> NDArray[np.object_]:
    """Amounts with a decimal comma (``-12,50``)."""
    return np.char.replace(np.char.mod("%.2f", np.asarray(x, np.float64)), ".", ",").astype(object)


@dataclass(frozen=True)
class ShopExport:
    """The rendered export: one frame per file (strings), and the counts behind it.

    Attributes:
        events, sends, customers: The three files' rows.
        counts: What the files hold: ``order_lines``, ``orders``, ``refund_lines``,
            ``clicks``, ``unsubscribes``, ``duplicated_lines``, ``sends``, ``customers``.
    """

    events: pd.DataFrame
    sends: pd.DataFrame
    customers: pd.DataFrame
    counts: dict[str, int]


def render_shop_logs(
    spec: ShopSpec, records: ShopRecords, rng: np.random.Generator, duplicate_rate: float = 0.003
) -> ShopExport:
    """Render the records as the roastery's export (see the module docstring)."""
    week0 = records.history_start
    ids = customer_numbers(records.n_customers)
    week = pd.Timedelta(weeks=1)
    hour = np.timedelta64(3600, "s")

    def at(weeks: IntArray, offset_s: NDArray[np.integer]) -> pd.Series:
        base = week0.to_datetime64() + np.asarray(weeks, np.int64) * week.to_timedelta64()
        return pd.Series(pd.DatetimeIndex(base + offset_s.astype("timedelta64[s]"), tz="UTC"))

    # orders -> 1..3 lines sharing the order's time; the last line takes the rounding rest
    o = records.orders
    n_orders = len(o)
    n_lines = 1 + rng.binomial(2, 0.3, n_orders)
    order_time = at(o["week"].to_numpy(), rng.integers(2 * 3600, 7 * 86400 - 2 * 3600, n_orders))
    line_order = np.repeat(np.arange(n_orders), n_lines)
    shares = rng.random(line_order.size) + 0.3
    shares /= np.bincount(line_order, shares)[line_order]
    paid = o["paid"].to_numpy()
    line_amount = np.round(paid[line_order] * shares, 2)
    last = np.cumsum(n_lines) - 1
    line_amount[last] += paid - np.bincount(line_order, line_amount, minlength=n_orders)
    line_amount = np.round(line_amount, 2)
    lines = pd.DataFrame(
        {
            "customer_no": ids[o["customer"].to_numpy()[line_order]],
            "ts": order_time.to_numpy()[line_order],
            "event_name": "order_line",
            "sku": np.asarray(SKUS, object)[rng.integers(0, len(SKUS), line_order.size)],
            "qty": rng.integers(1, 3, line_order.size).astype(str),
            "amount_eur": _amount(line_amount),
        }
    )
    r = records.refunds
    refund_rows = _event_rows(
        ids[r["customer"].to_numpy()],
        at(r["week"].to_numpy(), rng.integers(3600, 7 * 86400 - 3600, len(r))),
        "refund",
        _amount(-r["amount"].to_numpy()),
    )
    send_offset = 7 * 3600  # Monday 08:00/09:00 Berlin
    c = records.clicks
    click_rows = _event_rows(
        ids[c["customer"].to_numpy()],
        at(c["week"].to_numpy(), send_offset + rng.integers(600, 72 * 3600, len(c))),
        "email_click",
    )
    u = records.optouts
    optout_rows = _event_rows(
        ids[u["customer"].to_numpy()],
        at(u["week"].to_numpy(), send_offset + rng.integers(600, 96 * 3600, len(u))),
        "unsubscribe",
    )
    events = pd.concat([lines, refund_rows, click_rows, optout_rows], ignore_index=True)
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    events.insert(0, "event_uuid", _uuids(rng, len(events)))
    dup = np.flatnonzero((events["event_name"] == "order_line").to_numpy())
    dup = dup[rng.random(dup.size) < duplicate_rate]
    events = pd.concat([events, events.iloc[dup]], ignore_index=True)
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    events["occurred_at"] = _stamp(events["ts"])
    events = events[
        ["event_uuid", "customer_no", "occurred_at", "event_name", "sku", "qty", "amount_eur"]
    ]

    s = records.sends
    codes = np.asarray(spec.campaign_codes, object)
    sends = pd.DataFrame(
        {
            "send_id": np.char.mod("S%08d", np.arange(1, len(s) + 1)).astype(object),
            "customer_no": ids[s["customer"].to_numpy()],
            "sent_at": _stamp(
                at(s["week"].to_numpy(), send_offset + rng.integers(0, 3600, len(s)))
            ),
            "campaign_code": codes[s["action"].to_numpy()],
            "p_select": np.char.replace(
                np.char.mod("%.4f", s["propensity"].to_numpy()), ".", ","
            ).astype(object),
        }
    )
    signup_days = rng.integers(1, 700, records.n_customers)
    signup = week0.to_datetime64() - signup_days * np.timedelta64(1, "D") + 10 * hour
    created = pd.Series(pd.DatetimeIndex(signup, tz="UTC"))
    customers = pd.DataFrame(
        {
            "customer_no": ids,
            "created_at": _stamp(created),
            "country": np.asarray(["DE", "AT", "CH"], object)[
                rng.choice(3, records.n_customers, p=[0.8, 0.12, 0.08])
            ],
            "acquisition": np.asarray(spec.acquisition_labels, object)[records.label],
        }
    )
    counts = {
        "order_lines": int(line_order.size),
        "orders": n_orders,
        "refund_lines": len(r),
        "clicks": len(c),
        "unsubscribes": len(u),
        "duplicated_lines": int(dup.size),
        "sends": len(s),
        "customers": records.n_customers,
    }
    return ShopExport(events, sends, customers, counts)


def _uuids(rng: np.random.Generator, n: int) -> NDArray[np.object_]:
    """``n`` random UUID-like strings (8-4-4-4-12 hex digits)."""
    raw = rng.integers(0, 2**63 - 1, (n, 2), dtype=np.int64)
    text = pd.Series(np.char.mod("%016x", raw[:, 0])) + pd.Series(np.char.mod("%016x", raw[:, 1]))
    parts = [text.str[:8], text.str[8:12], text.str[12:16], text.str[16:20], text.str[20:32]]
    out = parts[0]
    for part in parts[1:]:
        out = out + "-" + part
    return out.to_numpy(object)


def write_shop_logs(
    export: ShopExport,
    output_dir: Path | str,
    overwrite: bool = False,
    truth: TrueStates | None = None,
) -> Path:
    """Write the three files (semicolon-separated) and ``counts.json`` into ``output_dir``, and
    ``truth`` as ``true_states.npz`` when given; refuses a non-empty folder unless
    ``overwrite``."""
    with staged_output_dir(output_dir, overwrite) as out:
        if truth is not None:
            truth.save(out / TRUE_STATES_FILE)
        export.events.to_csv(out / "shop_events.csv", sep=";", index=False)
        export.sends.to_csv(out / "campaign_sends.csv", sep=";", index=False)
        export.customers.to_csv(out / "customers.csv", sep=";", index=False)
        (out / "counts.json").write_text(json.dumps(export.counts, indent=2) + "\n")
    return Path(output_dir)
