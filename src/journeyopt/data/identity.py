"""Identity resolution: raw customer references that share an identifier become one customer.

Rules (see :class:`~journeyopt.data.source.IdentityConfig`):

* Identifiers are normalised first: e-mail trimmed, lower-cased, ``local+tag@`` -> ``local@``;
  phone numbers stripped of spaces, dashes, dots, slashes and parentheses, ``00`` -> ``+`` and a
  national leading ``0`` -> ``+<country code>``; external ids trimmed. Invalid or empty
  identifiers link nothing.
* Two raw ids sharing a normalised e-mail, phone or external id are the same customer, and so
  transitively (A-B by e-mail and B-C by phone -> A, B, C), computed as the connected components
  of the graph raw id -- identifier -- raw id (``scipy.sparse.csgraph``).
* An identifier shared by more than ``max_records_per_identifier`` raw ids (a front-desk
  address, a placeholder number) links nothing and is reported.
* Each component's ``customer_id`` is its smallest raw id (string order): deterministic and
  independent of row order. Raw ids absent from the identities table map to themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from journeyopt.data.normalise import normalise_emails, normalise_phones, normalise_text
from journeyopt.data.source import IdentityConfig

IDENTIFIER_TYPES: tuple[str, ...] = ("email", "phone", "external_id")
MAP_COLUMNS: tuple[str, ...] = ("raw_id", "customer_id")
LINK_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "identifier_type",
    "identifier",
    "raw_id",
    "status",
)
LINKED = "linked"


@dataclass(frozen=True)
class IdentityResolution:
    """The result of identity resolution.

    Attributes:
        mapping: ``raw_id -> customer_id`` for every raw id of the identities table, shape
            ``(r, 2)``, sorted by ``raw_id``.
        links: Why raw ids were merged: one row per (identifier, raw id) for identifiers that
            link two or more raw ids (``status="linked"``) or were ignored as over-shared
            (``status="ignored: shared by k raw ids > max_records_per_identifier=m"``).
        n_customers: Resolved customers among the raw ids (connected components).
        n_overshared: Identifiers ignored because too many raw ids share them.
    """

    mapping: pd.DataFrame
    links: pd.DataFrame
    n_customers: int
    n_overshared: int

    @property
    def n_raw_ids(self) -> int:
        """Distinct raw ids in the identities table."""
        return len(self.mapping)

    @property
    def n_merged(self) -> int:
        """Raw ids merged into another raw id's customer."""
        return self.n_raw_ids - self.n_customers


def empty_resolution() -> IdentityResolution:
    """No identities table: nothing is merged."""
    return IdentityResolution(
        pd.DataFrame({c: pd.Series([], dtype="str") for c in MAP_COLUMNS}),
        pd.DataFrame({c: pd.Series([], dtype="str") for c in LINK_COLUMNS}),
        0,
        0,
    )


def normalised_identifiers(identities: pd.DataFrame, config: IdentityConfig) -> pd.DataFrame:
    """Long table ``(node, identifier_type, identifier)`` of valid normalised identifiers.

    ``identities`` has the canonical columns ``raw_id, email, phone, external_id`` and a
    ``node`` column (int code of the raw id); pairs are de-duplicated.
    """
    normalisers = {
        "email": lambda s: normalise_emails(
            s, lowercase=config.lowercase_email, strip_plus=config.strip_plus_addressing
        ),
        "phone": lambda s: normalise_phones(
            s, default_country_code=config.phone_default_country_code
        ),
        "external_id": normalise_text,
    }
    parts = []
    for kind in IDENTIFIER_TYPES:
        value = normalisers[kind](identities[kind])
        part = pd.DataFrame(
            {"node": identities["node"].to_numpy(), "identifier_type": kind, "identifier": value}
        )
        parts.append(part.loc[part["identifier"] != ""])
    long = pd.concat(parts, ignore_index=True)
    return long.drop_duplicates(ignore_index=True)


def resolve_identities(identities: pd.DataFrame, config: IdentityConfig) -> IdentityResolution:
    """Merge raw ids that share identifiers (rules in the module docstring).

    Args:
        identities: Canonical identities rows, columns ``raw_id, email, phone, external_id``
            (strings, ``""`` when unknown); several rows may share a raw id.
        config: Normalisation options and the over-sharing limit.
    """
    if len(identities) == 0:
        return empty_resolution()
    codes, raw_ids = pd.factorize(identities["raw_id"], sort=True)
    n = len(raw_ids)
    long = normalised_identifiers(identities.assign(node=codes), config)
    group_size = long.groupby(["identifier_type", "identifier"])["node"].transform("size")
    overshared = long.loc[group_size > config.max_records_per_identifier]
    linking = long.loc[(group_size > 1) & (group_size <= config.max_records_per_identifier)]
    anchor = linking.groupby(["identifier_type", "identifier"])["node"].transform("min")
    graph = coo_matrix(
        (np.ones(len(linking)), (linking["node"].to_numpy(), anchor.to_numpy())), shape=(n, n)
    )
    n_components, labels = connected_components(graph, directed=False)
    smallest = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy()
    customer_of_node = np.asarray(raw_ids)[smallest]
    mapping = pd.DataFrame({"raw_id": np.asarray(raw_ids), "customer_id": customer_of_node})
    links = _links(linking, overshared, raw_ids, customer_of_node, config)
    n_overshared = len(overshared[["identifier_type", "identifier"]].drop_duplicates())
    return IdentityResolution(mapping.astype("str"), links, int(n_components), n_overshared)


def _links(
    linking: pd.DataFrame,
    overshared: pd.DataFrame,
    raw_ids: pd.Index,
    customer_of_node: np.ndarray,
    config: IdentityConfig,
) -> pd.DataFrame:
    """The explanation table (columns :data:`LINK_COLUMNS`), sorted by customer and identifier."""
    sizes = overshared.groupby(["identifier_type", "identifier"])["node"].transform("size")
    status = (
        "ignored: shared by "
        + sizes.astype("str")
        + (f" raw ids > max_records_per_identifier={config.max_records_per_identifier}")
    )
    both = pd.concat(
        [linking.assign(status=LINKED), overshared.assign(status=status.astype("str"))],
        ignore_index=True,
    )
    nodes = both["node"].to_numpy()
    links = pd.DataFrame(
        {
            "customer_id": customer_of_node[nodes],
            "identifier_type": both["identifier_type"].to_numpy(),
            "identifier": both["identifier"].to_numpy(),
            "raw_id": np.asarray(raw_ids)[nodes],
            "status": both["status"].to_numpy(),
        }
    ).astype("str")
    order = ["customer_id", "identifier_type", "identifier", "raw_id"]
    return links.sort_values(order, kind="stable").reset_index(drop=True)


def apply_mapping(raw_ids: pd.Series, mapping: pd.DataFrame) -> pd.Series:
    """Resolved ``customer_id`` of each raw id (unmapped ids map to themselves). Shape ``(n,)``.

    Works on the distinct values only, so it is fast for long event tables.
    """
    if len(mapping) == 0 or len(raw_ids) == 0:
        return raw_ids
    if isinstance(raw_ids.dtype, pd.CategoricalDtype):  # map the categories only
        resolved_categories = apply_mapping(pd.Series(raw_ids.cat.categories, dtype="str"), mapping)
        codes, categories = pd.factorize(resolved_categories)
        remap = np.append(codes, -1)[raw_ids.cat.codes.to_numpy()]
        dtype = pd.CategoricalDtype(pd.Index(categories, dtype="str"))
        return pd.Series(pd.Categorical.from_codes(remap, dtype=dtype), index=raw_ids.index)
    codes, uniques = pd.factorize(raw_ids)
    position = pd.Index(mapping["raw_id"]).get_indexer(uniques)
    resolved = np.where(
        position >= 0, mapping["customer_id"].to_numpy()[position], np.asarray(uniques)
    )
    return pd.Series(resolved[codes], index=raw_ids.index, dtype="str")


def merge_customer_records(customers: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per resolved ``customer_id``: the earliest ``signup_date`` and, per attribute,
    the first non-empty value in source order. Returns the rows sorted by ``customer_id`` and
    the number of rows merged away."""
    if len(customers) == 0:
        return customers, 0
    by_id = customers.groupby("customer_id", sort=True)
    merged = pd.DataFrame({"signup_date": by_id["signup_date"].min()})
    for column in customers.columns:
        if column in ("customer_id", "signup_date", "source_file", "source_row"):
            continue
        values = customers[column].mask(customers[column] == "")
        merged[column] = values.groupby(customers["customer_id"], sort=True).first().fillna("")
    merged = merged.reset_index()
    return merged, len(customers) - len(merged)
