"""Response bodies of the scoring API, built as plain dicts and lists to the documented
response models (:mod:`journeyopt.serving.schemas`) and serialised once by pydantic-core: no
response-model validation per request."""

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pydantic_core
from fastapi.responses import Response
from numpy.typing import NDArray

from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.serving.decisions import decision_versions, probabilities_json, response_columns
from journeyopt.serving.guards import UNKNOWN_CUSTOMER
from journeyopt.serving.holdout import GROUPS
from journeyopt.serving.scorer import Decisions, Scorer
from journeyopt.sim.rules import REASONS


def json_response(content: Any) -> Response:
    """A JSON response serialised by pydantic-core (about twice as fast as ``json.dumps`` on
    a batch's decisions); the dicts are built to the documented response models."""
    return Response(pydantic_core.to_json(content), media_type="application/json")


def model_info(scorer: Scorer) -> dict[str, Any]:
    """What ``GET /v1/model`` answers."""
    model, world, rules = scorer.model, scorer.world, scorer.rules
    return {
        "name": model.name,
        "version": model.version,
        "uri": model.uri,
        "requested": model.requested,
        "run_id": model.run_id,
        "content_sha256": model.content_sha256,
        "lineage": {"world": world.name, **model.lineage},
        "actions": [
            {"name": n, "channel": c, "cost": cost}
            for n, c, cost in zip(
                world.actions.names, world.actions.channels, world.actions.costs, strict=True
            )
        ],
        "contact_rules": {
            "frequency_caps": dict(rules.frequency_caps),
            "fatigue_weeks": rules.spec.fatigue_weeks,
            "cooldown_weeks": rules.cooldown_weeks,
            "total_cap": rules.total_cap,
            "min_gap_weeks": rules.min_gap_weeks,
            "caps": [dataclasses.asdict(cap) for cap in rules.caps],
            "quiet_weeks": [dataclasses.asdict(quiet) for quiet in rules.quiet],
            "eligibility": [
                {
                    "segments": [world.segment_names[k] for k in rule.segments],
                    "lifecycle": [LIFECYCLE_STAGES[k] for k in rule.lifecycle],
                    "channels": list(rule.channels),
                    "actions": list(rule.actions),
                }
                for rule in rules.eligibility
            ],
            "capacity_per_week": dict(rules.capacity),
            "opted_out": "no contact on an opted-out channel",
            "unknown_customers": "none",
        },
        "holdout": {
            "control_share": scorer.settings.holdout.control_share,
            "control_policy": scorer.staff.name,
        },
        "rollout": {
            "stage": "canary" if model.previous is not None else "full",
            "canary_share": model.canary_share,
            "previous_version": model.previous.version if model.previous is not None else None,
        },
        "features": list(world.features.feature_names),
        "segments": list(world.segment_names),
    }


_ESCAPED = re.compile(r'[\x00-\x1f"\\]')
"""Characters a JSON string literal cannot hold as they are."""


def _json_strings(values: Sequence[str]) -> pa.Array:
    """(N,) JSON string literals of ``values`` (quoted; escaped only where needed)."""
    if _ESCAPED.search("".join(values)) is None:
        return pc.binary_join_element_wise('"', pa.array(values, pa.string()), '"', "")
    return pa.array([json.dumps(v, ensure_ascii=False) for v in values], pa.string())


def _masked(
    decisions: Decisions, actions: Sequence[str]
) -> tuple[list[dict[str, str]], NDArray[np.intp]]:
    """Action -> why the contact rules forbid it, once per distinct combination of reasons
    (a handful in any batch), and (N,) each customer's combination."""
    codes = decisions.reasons.astype(np.int64)
    unknown = len(REASONS)
    codes[~decisions.batch.known, 1:] = unknown  # every contact, for unknown customers
    keys = codes @ (unknown + 1) ** np.arange(codes.shape[1], dtype=np.int64)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    named = [*REASONS, UNKNOWN_CUSTOMER]
    objects = [
        {actions[a]: named[c] for a, c in enumerate(codes[row].tolist()) if c}
        for row in first.tolist()
    ]
    return objects, inverse.reshape(-1)


def _masked_json(decisions: Decisions, actions: Sequence[str]) -> pa.Array:
    """(N,) JSON objects of :func:`_masked`."""
    objects, inverse = _masked(decisions, actions)
    return pc.take(pa.array([json.dumps(o) for o in objects], pa.string()), pa.array(inverse))


_DIGIT_TRIPLES = np.array(
    [(i // 100) | (i // 10 % 10) << 8 | (i % 10) << 16 for i in range(1000)], np.uint64
)
"""The three decimal digits of 0..999 as the low bytes of a little-endian word."""
_ZERO_TEXT = int(np.frombuffer(b"0.000000", "<u8")[0])
"""The bytes of ``0.000000`` as a little-endian word: a number's digits are added to it."""


def shares_json(values: NDArray[np.float64], names: Sequence[str]) -> pa.Array:
    """(N,) JSON objects name -> value of (N, A) ``values`` in [0, 1] (probabilities, scores),
    each written with six decimals (``0.201007``, ``1.000000``).

    The numbers are the values rounded to 6 decimals exactly as ``np.round`` rounds them: the
    text of the integer ``k = rint(1e6 x)`` with a decimal point, which reads back to
    ``k / 1e6``, the double ``np.round(x, 6)`` gives. Every text has the same width, so the
    whole column is built as one byte matrix in numpy: about 0.2 ms for 1,000 customers, a
    quarter of formatting each float in Arrow (:func:`probabilities_json`, which values that
    round to outside [0, 1] or are not finite still take).
    """
    values = np.asarray(values, np.float64)
    n, width = values.shape
    scaled = np.rint(values * 1e6)
    if not ((scaled >= 0.0) & (scaled <= 1e6)).all():  # NaN too
        return probabilities_json(values, names)
    millionths = scaled.astype(np.int64)  # 0..1_000_000
    whole = millionths // 1_000_000
    fraction = millionths - whole * 1_000_000
    high = fraction // 1000
    words = (
        np.uint64(_ZERO_TEXT)
        + whole.astype(np.uint64)
        + (_DIGIT_TRIPLES[high] << np.uint64(16))
        + (_DIGIT_TRIPLES[fraction - high * 1000] << np.uint64(40))
    )
    numbers = words.astype("<u8").view(np.uint8).reshape(n, width, 8)
    keys = [(("{" if a == 0 else ", ") + json.dumps(name) + ": ").encode() for a, name in
            enumerate(names)]  # fmt: skip
    row = sum(map(len, keys)) + 8 * width + 1
    text = np.empty((n, row), np.uint8)
    at = 0
    for a, key in enumerate(keys):
        text[:, at : at + len(key)] = np.frombuffer(key, np.uint8)
        text[:, at + len(key) : at + len(key) + 8] = numbers[:, a]
        at += len(key) + 8
    text[:, at] = ord("}")
    offsets = np.arange(0, n * row + 1, row, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


SMALL_BATCH = 32
"""Up to this many decisions, response bodies are built object by object (Arrow's fixed cost
per call is larger); above, column-wise."""


def decision_texts(decisions: Decisions, ids: pa.Array, scorer: Scorer) -> list[str]:
    """(N,) each decision's response body (``ScoreResponse`` of
    :mod:`journeyopt.serving.schemas`) as JSON text, in order; ``ids``: the decisions' (N,)
    decision ids (as in the decision log).

    A few decisions are built as dicts and serialised by pydantic-core; more are built a field
    at a time over all customers in Arrow (:func:`decision_json`), so a thousand decisions
    cost about as much as a few dozen built object by object. Both give the same JSON values.
    """
    if decisions.batch.n <= SMALL_BATCH:
        objects = decision_objects(decisions, ids, scorer)
        return [pydantic_core.to_json(d).decode() for d in objects]
    return list(decision_json(decisions, ids, scorer).to_pylist())


def decision_json(decisions: Decisions, ids: pa.Array, scorer: Scorer) -> pa.Array:
    """(N,) :func:`decision_texts` built column-wise in Arrow: probabilities and scores with
    six decimals (:func:`shares_json`), other numbers in their shortest form that reads back
    to the same float."""
    names = scorer.action_names
    actions = pa.array(decisions.actions)
    known = decisions.batch.known
    model = scorer.model
    parts: list[Any] = [
        '{"customer_id": ', _json_strings([str(c) for c in decisions.batch.customer_ids]),
        ', "decision_id": "', ids, '"',  # hex digits, a dash and a number: nothing to escape
        f', "as_of": {json.dumps(decisions.batch.as_of.isoformat())}, "group": ',
        pc.take(_json_strings(GROUPS), pa.array(decisions.control.astype(np.int8))),
        ', "action": ', pc.take(_json_strings(names), actions),
        ', "channel": ', pc.take(_json_strings(scorer.channels), actions),
        ', "propensity": ', pa.array(decisions.propensity).cast(pa.string()),
        ', "expected_value": ', pa.array(np.round(decisions.expected_value, 6)).cast(pa.string()),
        f', "model_name": {json.dumps(model.name)}, "model_version": ',
        _versions_json(decisions, model.version),
        ', "probabilities": ',
        shares_json(decisions.probabilities, names),
        ', "scores": ', shares_json(decisions.scores, names),
        ', "masked": ', _masked_json(decisions, names),
        ', "known": ', pc.take(pa.array(["false", "true"]), pa.array(known.astype(np.int8))),
        "}",
    ]  # fmt: skip
    return pc.binary_join_element_wise(*parts, "")


def _versions_json(decisions: Decisions, version: str) -> str | pa.Array:
    """The JSON of each decision's deciding version: one literal without a canary, (N,)
    literals during one (the previous version for the ``previous`` arm)."""
    if not decisions.previous_version:
        return json.dumps(version)
    return _json_strings(decision_versions(decisions, version))


def decision_objects(decisions: Decisions, ids: pa.Array, scorer: Scorer) -> list[dict[str, Any]]:
    """:func:`decision_texts` as dicts, built customer by customer."""
    names = scorer.action_names
    model = scorer.model
    rows = response_columns(
        decisions, names, scorer.channels, model.name, model.version, ids.to_pylist()
    )
    probabilities = np.round(decisions.probabilities, 6).tolist()
    scores = np.round(decisions.scores, 6).tolist()
    objects, inverse = _masked(decisions, names)
    masked = [objects[k] for k in inverse.tolist()]
    known = decisions.batch.known.tolist()
    fields = ("customer_id", "decision_id", "as_of", "group", "action", "channel",
              "propensity", "expected_value", "model_name", "model_version")  # fmt: skip
    return [
        {
            **dict(zip(fields, values, strict=True)),
            "probabilities": dict(zip(names, probabilities[i], strict=True)),
            "scores": dict(zip(names, scores[i], strict=True)),
            "masked": masked[i],
            "known": known[i],
        }
        for i, values in enumerate(zip(*(rows[f] for f in fields), strict=True))
    ]


def batch_body(texts: Sequence[str]) -> Response:
    """The ``BatchResponse`` of decisions given as :func:`decision_texts`."""
    return Response('{"decisions": [' + ", ".join(texts) + "]}", media_type="application/json")


COLUMN_FIELDS = ("customer_id", "decision_id", "group", "action", "channel", "propensity",
                 "expected_value")  # fmt: skip
"""Decision log columns a columnar response repeats as they are."""


def masked_columns(decisions: Decisions, action_names: Sequence[str]) -> dict[str, list[Any]]:
    """Action -> (N,) why the contact rules forbid it for each customer (None: allowed)."""
    codes = np.asarray([None, *REASONS[1:], UNKNOWN_CUSTOMER], dtype=object)
    reasons = decisions.reasons.astype(np.int64)
    reasons[~decisions.batch.known, 1:] = len(REASONS)  # every contact, for unknown customers
    named = codes[reasons]
    return {a: named[:, i].tolist() for i, a in enumerate(action_names)}


def column_responses(decisions: Decisions, ids: pa.Array, scorer: Scorer) -> dict[str, Any]:
    """The columnar response body of the decisions (``ids``: their decision ids)."""
    model = scorer.model
    rows = response_columns(
        decisions, scorer.action_names, scorer.channels, model.name, model.version,
        ids.to_pylist(),
    )  # fmt: skip
    probabilities = np.round(decisions.probabilities, 6)
    scores = np.round(decisions.scores, 6)
    return {
        "as_of": decisions.batch.as_of.isoformat(),
        "model_name": scorer.model.name,
        "model_version": scorer.model.version,
        **{c: rows[c] for c in COLUMN_FIELDS},
        "known": decisions.batch.known.tolist(),
        "probabilities": {
            a: probabilities[:, i].tolist() for i, a in enumerate(scorer.action_names)
        },
        "scores": {a: scores[:, i].tolist() for i, a in enumerate(scorer.action_names)},
        "masked": masked_columns(decisions, scorer.action_names),
    }
