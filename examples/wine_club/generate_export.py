"""Write the wine club's example export (``src/journeyopt/datasets/wine_club/``), once, seeded.

The club's history is simulated from a known world (``truth_world.yaml``, a shop world: purchase
cycles of a latent member type, count-based fatigue, delayed effects of a sommelier's call,
refunds, at most 2 contacts in any 4 weeks over all channels) under the club's own practice
(``my_configs/practice/wine_club.yaml``) with 10 % logged exploration, then rendered the way a
US shop system and its e-mail/call tool would export it:

``members.csv``
    ``Member ID,Joined,Signup Source,Email,Phone``: one row per member, ``Joined`` as
    ``MM/DD/YYYY``; the signup source is the only attribute on record.
``activity.csv``
    ``Member ID,Date,Activity,Amount (USD)``: orders (``Order``, the amount paid), refunds
    (``Refund``, a *positive* amount paid back one or two weeks after the order), e-mail clicks
    and unsubscribes; dates ``MM/DD/YYYY hh:mm AM`` in New York local time. A re-exported batch
    repeats a few orders exactly, and a few ``Address Change`` rows (no role) are in it too.
``outreach.csv``
    ``Member ID,Sent,Campaign,Channel,Selection Probability``: one row per contact sent, in the
    tool's campaign names, with the probability that the selection chose it.

Run from the project folder (it refuses to overwrite unless ``--overwrite``):

    .venv/bin/python examples/wine_club/generate_export.py --overwrite
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from journeyopt.outputs import staged_output_dir
from journeyopt.sim.config import StaffRulesConfig
from journeyopt.sim.shop import load_shop
from journeyopt.sim.shop_logs import ShopRecords, simulate_shop_logs

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "src" / "journeyopt" / "datasets" / "wine_club"
SEED = 2026
N_MEMBERS = 1200
LOGGED_WEEKS = 52
BURN_IN_WEEKS = 12
EXPLORATION = 0.1
FIRST_LOGGED_MONDAY = "2024-01-01"
TIMEZONE = "America/New_York"
STAMP = "%m/%d/%Y %I:%M %p"
CAMPAIGNS = {
    "cellar_letter": ("Cellar Letter", "Email"),
    "case_deal": ("Case Deal 10%", "Email"),
    "sommelier_call": ("Sommelier Call", "Phone"),
    "tasting_card": ("Tasting Room Card", "Mail"),
}
DUPLICATE_RATE = 0.004
ADDRESS_CHANGES = 5


def _practice() -> StaffRulesConfig:
    raw = OmegaConf.load(HERE / "my_configs" / "practice" / "wine_club.yaml")
    merged = OmegaConf.merge(OmegaConf.structured(StaffRulesConfig), raw)
    obj = OmegaConf.to_object(merged)
    assert isinstance(obj, StaffRulesConfig)
    return obj


def _local(ts: pd.DatetimeIndex, fmt: str = STAMP) -> np.ndarray:
    return np.asarray(ts.tz_convert(TIMEZONE).strftime(fmt), object)


def render(
    records: ShopRecords, names: tuple[str, ...], labels: tuple[str, ...], rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three files' rows (strings), in the export's own vocabulary and formats."""
    week0 = records.history_start.to_datetime64()
    week = np.timedelta64(7 * 86400, "s")
    ids = np.char.mod("WC%05d", np.arange(1, records.n_customers + 1) + 10000).astype(object)

    def at(weeks: np.ndarray, low_s: int, high_s: int) -> pd.DatetimeIndex:
        seconds = rng.integers(low_s, high_s, len(weeks)).astype("timedelta64[s]")
        return pd.DatetimeIndex(week0 + weeks.astype(np.int64) * week + seconds, tz="UTC")

    o, r, c, u = records.orders, records.refunds, records.clicks, records.optouts
    day = 86400
    parts = [
        ("Order", o["customer"], at(o["week"].to_numpy(), 3600, 7 * day - 3600), o["paid"]),
        ("Refund", r["customer"], at(r["week"].to_numpy(), 3600, 7 * day - 3600), r["amount"]),
        ("Email Click", c["customer"], at(c["week"].to_numpy(), 14 * 3600, 4 * day), None),
        ("Unsubscribe", u["customer"], at(u["week"].to_numpy(), 14 * 3600, 5 * day), None),
    ]
    frames = []
    for name, customer, ts, amount in parts:
        frames.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "Member ID": ids[customer.to_numpy()],
                    "Activity": name,
                    "Amount (USD)": ""
                    if amount is None
                    else np.char.mod("%.2f", np.round(amount.to_numpy(np.float64), 2)),
                }
            )
        )
    moved = rng.choice(records.n_customers, ADDRESS_CHANGES, replace=False)
    frames.append(
        pd.DataFrame(
            {
                "ts": at(np.full(ADDRESS_CHANGES, records.weeks - 10), 0, 7 * day),
                "Member ID": ids[moved],
                "Activity": "Address Change",
                "Amount (USD)": "",
            }
        )
    )
    events = pd.concat(frames, ignore_index=True)
    dup = np.flatnonzero((events["Activity"] == "Order").to_numpy())
    dup = dup[rng.random(dup.size) < DUPLICATE_RATE]
    events = pd.concat([events, events.iloc[dup]], ignore_index=True)
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    events.insert(1, "Date", _local(pd.DatetimeIndex(events.pop("ts"))))

    s = records.sends
    campaign = np.array([CAMPAIGNS.get(a, (a, ""))[0] for a in names], object)
    channel = np.array([CAMPAIGNS.get(a, (a, ""))[1] for a in names], object)
    action = s["action"].to_numpy()
    sent = at(s["week"].to_numpy(), 13 * 3600, 15 * 3600)  # Monday 8-10 am New York
    outreach = pd.DataFrame(
        {
            "ts": sent,
            "Member ID": ids[s["customer"].to_numpy()],
            "Campaign": campaign[action],
            "Channel": channel[action],
            "Selection Probability": np.char.mod("%.3f", s["propensity"].to_numpy()),
        }
    )
    outreach = outreach.sort_values("ts", kind="stable").reset_index(drop=True)
    outreach.insert(1, "Sent", _local(pd.DatetimeIndex(outreach.pop("ts"))))

    joined_days = rng.integers(1, 900, records.n_customers).astype("timedelta64[D]")
    joined = pd.DatetimeIndex(week0 - joined_days + np.timedelta64(15, "h"), tz="UTC")
    phone = np.char.mod("(212) 555-%04d", rng.integers(0, 10000, records.n_customers))
    members = pd.DataFrame(
        {
            "Member ID": ids,
            "Joined": _local(joined, "%m/%d/%Y"),
            "Signup Source": np.asarray(labels, object)[records.label],
            "Email": np.char.mod("member%05d@example.com", np.arange(records.n_customers)),
            "Phone": np.where(rng.random(records.n_customers) < 0.6, phone, ""),
        }
    )
    return members, events, outreach


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    spec = load_shop(HERE / "truth_world.yaml")
    rng = np.random.default_rng(SEED)
    records = simulate_shop_logs(
        spec,
        _practice().to_practice(),
        N_MEMBERS,
        LOGGED_WEEKS,
        EXPLORATION,
        rng,
        start=FIRST_LOGGED_MONDAY,
        burn_in_weeks=BURN_IN_WEEKS,
    )
    members, events, outreach = render(records, spec.actions.names, spec.acquisition_labels, rng)
    counts = {
        "members": len(members),
        "activity_rows": len(events),
        "orders": int((events["Activity"] == "Order").sum()),
        "refunds": int((events["Activity"] == "Refund").sum()),
        "outreach_rows": len(outreach),
        "logged_reward_per_member_usd": round(float(records.reward.mean()), 2),
    }
    with staged_output_dir(args.out, args.overwrite) as out:
        members.to_csv(out / "members.csv", index=False)
        events.to_csv(out / "activity.csv", index=False)
        outreach.to_csv(out / "outreach.csv", index=False)
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
