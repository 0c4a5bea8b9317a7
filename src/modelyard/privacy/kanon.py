"""k-anonymity and l-diversity over declared quasi-identifiers, by full-domain generalisation.

Each quasi-identifier has a hierarchy: its raw values (level 0), the ``Generalization``s listed
for it, then ``*`` (suppressed). A choice of one level per quasi-identifier is a node of the
lattice; the step evaluates every node (the lattice of a few columns with a few levels each is
small: a cap refuses big ones) and keeps the one that, after removing the rows of equivalence
classes smaller than ``k`` or with fewer than ``l`` distinct sensitive values (at most
``max_suppression`` of the rows), loses least information by the discernibility metric
(Bayardo & Agrawal 2005: each kept row costs the size of its class, each removed row the table's
size), or with ``metric: height`` the weighted share of each hierarchy climbed (plus the share of
rows removed), which lets ``weights`` keep the columns a model needs fine-grained. This is the
optimal full-domain search of Incognito/ARX, exhaustive rather than pruned.
The all-``*`` node always qualifies (one class of every row), so a table of at least k rows
always gets an answer.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from modelyard._validation import StrictModel
from modelyard.errors import DataError
from modelyard.privacy.generalize import SUPPRESSED, Generalization, generalized
from modelyard.privacy.steps import ANONYMIZERS, TableStep, require_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KAnonymityOptions", "MAX_NODES", "classes"]

MAX_NODES = 20_000


class KAnonymityOptions(StrictModel):
    quasi_identifiers: dict[str, list[Generalization]] = Field(min_length=1)
    k: int = Field(5, ge=2)
    l: int = Field(1, ge=1)  # noqa: E741 (the letter of l-diversity)
    sensitive: str | None = Field(None, min_length=1)
    max_suppression: float = Field(0.05, ge=0.0, lt=1.0)
    metric: Literal["discernibility", "height"] = "discernibility"
    weights: dict[str, float] = {}  # metric height: how much climbing each column's hierarchy costs (default 1)

    @model_validator(mode="after")
    def _sensitive_for_l(self) -> KAnonymityOptions:
        if self.l > 1 and self.sensitive is None:
            raise ValueError(f"l = {self.l} needs `sensitive`: the column whose values must vary within each class")
        unknown = sorted(set(self.weights) - set(self.quasi_identifiers))
        if unknown:
            raise ValueError(f"weights names {unknown[0]!r}, which is not one of the quasi_identifiers")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("expected weights >= 0")
        if self.sensitive is not None and self.sensitive in self.quasi_identifiers:
            raise ValueError(f"the sensitive column {self.sensitive!r} cannot also be a quasi-identifier")
        nodes = int(np.prod([len(levels) + 2 for levels in self.quasi_identifiers.values()]))
        if nodes > MAX_NODES:
            raise ValueError(
                f"the hierarchies give {nodes} combinations of levels, expected at most {MAX_NODES}: "
                f"declare fewer quasi-identifiers or fewer levels"
            )
        return self


def classes(codes: list[np.ndarray]) -> np.ndarray:
    """The equivalence class of each row: rows with equal codes in every column share one."""
    stacked = np.stack(codes, axis=1)
    return np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1)


def _codes(series: pd.Series) -> np.ndarray:
    import pandas as pd

    return pd.factorize(series, use_na_sentinel=False)[0]


class _KAnonymity(TableStep):
    def check(self, columns: list[str], field: str, where: str) -> list[str]:
        opts = self.opts
        require_columns(list(opts.quasi_identifiers), columns, f"{field}.quasi_identifiers", where)
        if opts.sensitive is not None:
            require_columns([opts.sensitive], columns, f"{field}.sensitive", where)
        self.field = field
        return columns

    def apply(self, frame: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
        opts, n = self.opts, len(frame)
        if n < opts.k:
            raise DataError(
                f"Invalid value for `{self.field}.k`: the table has {n} rows, fewer than k = {opts.k}",
                field=f"{self.field}.k",
            )
        names = list(opts.quasi_identifiers)
        # levels[q][i]: the column generalised to level i (0 raw, then the hierarchy, then "*").
        levels: list[list[pd.Series]] = []
        for name in names:
            hierarchy: list[Generalization | None] = [*opts.quasi_identifiers[name], None]
            column = frame[name]
            levels.append(
                [column] + [generalized(column, g, f"{self.field}.quasi_identifiers.{name}") for g in hierarchy]
            )
        codes = [[_codes(s) for s in column_levels] for column_levels in levels]
        sensitive = _codes(frame[opts.sensitive]) if opts.sensitive is not None else None
        allowed = int(np.floor(opts.max_suppression * n))
        best: tuple[float, tuple[int, ...], np.ndarray] | None = None
        for node in itertools.product(*(range(len(c)) for c in codes)):
            cls = classes([codes[q][level] for q, level in enumerate(node)])
            bad = self._violating(cls, sensitive)
            removed = int(bad.sum())
            if removed > allowed:
                continue
            cost = self._cost(cls, bad, node, [len(c) - 1 for c in codes], names)
            if best is None or cost < best[0] or (cost == best[0] and sum(node) < sum(best[1])):
                best = (cost, node, bad)
        if best is None:  # only when l cannot be met even by one class of every row
            raise DataError(
                f"Invalid value for `{self.field}.l`: even with every quasi-identifier suppressed the column "
                f"{opts.sensitive!r} has fewer than l = {opts.l} distinct values",
                field=f"{self.field}.l",
            )
        _cost, node, bad = best
        out = frame.copy()
        for q, name in enumerate(names):
            out[name] = levels[q][node[q]]
        out = out.loc[~bad].reset_index(drop=True)
        report["k_anonymity"] = self._report(out, names, node, int(bad.sum()), n)
        return out

    def _cost(
        self, cls: np.ndarray, bad: np.ndarray, node: tuple[int, ...], tops: list[int], names: list[str]
    ) -> float:
        n, removed = len(cls), int(bad.sum())
        if self.opts.metric == "height":
            climbed = sum(self.opts.weights.get(q, 1.0) * level / top for q, level, top in zip(names, node, tops))
            return climbed + removed / n
        sizes = np.bincount(cls[~bad]) if removed < n else np.zeros(0)
        return float(np.sum(sizes.astype(np.float64) ** 2) + removed * n)

    def _violating(self, cls: np.ndarray, sensitive: np.ndarray | None) -> np.ndarray:
        sizes = np.bincount(cls)
        bad = sizes[cls] < self.opts.k
        if sensitive is not None and self.opts.l > 1:
            pairs = np.unique(np.stack([cls, sensitive], axis=1), axis=0)
            distinct = np.bincount(pairs[:, 0], minlength=len(sizes))
            bad |= distinct[cls] < self.opts.l
        return bad

    def _report(
        self, out: pd.DataFrame, names: list[str], node: tuple[int, ...], removed: int, n: int
    ) -> dict[str, Any]:
        opts = self.opts
        chosen = {}
        for name, level in zip(names, node):
            hierarchy = opts.quasi_identifiers[name]
            chosen[name] = (
                "raw values"
                if level == 0
                else SUPPRESSED
                if level > len(hierarchy)
                else hierarchy[level - 1].describe()
            )
        cls = classes([_codes(out[name]) for name in names]) if len(out) else np.zeros(0, dtype=np.int64)
        sizes = np.bincount(cls) if len(out) else np.zeros(0, dtype=np.int64)
        report: dict[str, Any] = {
            "quasi_identifiers": names,
            "k": opts.k,
            "k_achieved": int(sizes.min()) if len(sizes) else None,
            "classes": int(len(sizes)),
            "levels": dict(zip(names, node)),
            "generalization": chosen,
            "suppressed_rows": removed,
            "suppressed_fraction": removed / n,
            "max_suppression": opts.max_suppression,
        }
        if opts.sensitive is not None:
            pairs = np.unique(np.stack([cls, _codes(out[opts.sensitive])], axis=1), axis=0) if len(out) else None
            report["sensitive"] = opts.sensitive
            report["l"] = opts.l
            report["l_achieved"] = int(np.bincount(pairs[:, 0]).min()) if pairs is not None else None
        return report


@ANONYMIZERS.component("k_anonymity", "kanonymity", options=KAnonymityOptions)
def k_anonymity(opts: KAnonymityOptions) -> TableStep:
    """Generalise quasi-identifiers (and remove at most max_suppression of the rows) until every class has k rows and l sensitive values."""
    return _KAnonymity(opts)
