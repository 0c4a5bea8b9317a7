"""The ``federated:`` spec section: clients, partition, rounds and the aggregation strategy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from modelyard._validation import StrictModel, describe

__all__ = ["FederatedSpec", "FederatedDPSpec", "PartitionSpec", "SecureAggregationSpec", "StrategySpec"]

# Which options belong to which kind: an option given to another kind is refused by name.
_PARTITION_OPTIONS = {"iid": (), "dirichlet": ("alpha",), "shards": ("shards_per_client",), "column": ("column",)}
_STRATEGY_OPTIONS = {
    "fedavg": (),
    "fedprox": ("mu",),
    "fedadam": ("server_lr", "beta1", "beta2", "tau"),
}

# Li et al.'s mu grid includes 0.01; Reddi et al.'s FedAdam defaults (beta2 0.99, tau 1e-3).
_STRATEGY_DEFAULTS = {"mu": 0.01, "server_lr": 0.01, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}


def _named(data: Any, kinds: dict[str, tuple[str, ...]], primary: dict[str, str]) -> Any:
    """``iid``, ``{dirichlet: {alpha: 0.5}}``, ``{dirichlet: 0.5}`` or ``{type: dirichlet, alpha: 0.5}``
    as ``{type: ..., options...}``."""
    if isinstance(data, str):
        return {"type": data}
    if isinstance(data, dict) and "type" not in data and len(data) == 1:
        ((name, options),) = data.items()
        if isinstance(options, dict):
            return {"type": name, **options}
        if options is None:
            return {"type": name}
        if name in primary:
            return {"type": name, primary[name]: options}
        return {"type": name, "options": options}  # refused below as an unknown field of that kind
    return data


def _check_kind(data: Any, kinds: dict[str, tuple[str, ...]], what: str) -> Any:
    if not isinstance(data, dict):
        return data
    kind = data.get("type")
    if kind not in kinds:
        return data  # the Literal names the valid kinds
    for key in data:
        # A stored spec round-trips with the other kinds' options as None.
        if key != "type" and key not in kinds[kind] and data[key] is not None:
            allowed = ", ".join(kinds[kind]) or "no options"
            raise ValueError(f"{what} {kind!r} takes {allowed}; received option {key!r}")
    return data


class PartitionSpec(StrictModel):
    """How the training split is divided among the clients.

    ``iid``: a random equal split. ``dirichlet``: each class's samples split among clients in
    proportions drawn from Dirichlet(alpha) (small alpha: few classes per client). ``shards``:
    samples sorted by label, cut into ``clients * shards_per_client`` shards, each client gets
    ``shards_per_client`` of them (McMahan et al.'s pathological non-IID split). ``column``: the
    data's own split, ``{column: site}``: each distinct value of the table's ``data.groups``
    column (which must name the same column) is one client, as the rows were collected.
    """

    type: Literal["iid", "dirichlet", "shards", "column"]
    alpha: float | None = Field(None, gt=0.0)
    shards_per_client: int | None = Field(None, ge=1)
    column: str | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, data: Any) -> Any:
        named = _named(data, _PARTITION_OPTIONS, {"dirichlet": "alpha", "column": "column"})
        return _check_kind(named, _PARTITION_OPTIONS, "partition")

    @model_validator(mode="after")
    def _alpha(self) -> PartitionSpec:
        if self.type == "dirichlet" and self.alpha is None:
            raise ValueError("partition 'dirichlet' needs alpha, a number > 0 (e.g. {dirichlet: {alpha: 0.5}})")
        if self.type == "column" and self.column is None:
            raise ValueError("partition 'column' needs the column naming each row's client (e.g. {column: site})")
        if self.type == "shards" and self.shards_per_client is None:
            object.__setattr__(self, "shards_per_client", 2)
        return self


class StrategySpec(StrictModel):
    """How the server combines client updates.

    ``fedavg``: the sample-weighted mean of client weights (McMahan et al. 2017). ``fedprox``: the
    same mean, clients train with a proximal term ``mu/2 ||w - w_global||^2`` (Li et al. 2020).
    ``fedadam``: the weighted mean update is a pseudo-gradient for a server Adam step without bias
    correction (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2).
    """

    type: Literal["fedavg", "fedprox", "fedadam"]
    mu: float | None = Field(None, gt=0.0)
    server_lr: float | None = Field(None, gt=0.0)
    beta1: float | None = Field(None, ge=0.0, lt=1.0)
    beta2: float | None = Field(None, ge=0.0, lt=1.0)
    tau: float | None = Field(None, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, data: Any) -> Any:
        return _check_kind(_named(data, _STRATEGY_OPTIONS, {"fedprox": "mu"}), _STRATEGY_OPTIONS, "strategy")

    @model_validator(mode="after")
    def _defaults(self) -> StrategySpec:
        for key in _STRATEGY_OPTIONS[self.type]:
            if getattr(self, key) is None:
                object.__setattr__(self, key, _STRATEGY_DEFAULTS[key])
        return self


class FederatedDPSpec(StrictModel):
    """``federated.dp:`` — client-level differential privacy (DP-FedAvg, McMahan et al. 2018).

    Each drawn client's update (its weights minus the round's global weights, as one vector) is
    clipped to L2 norm ``max_update_norm``; the server averages the clipped updates of the ``m``
    drawn clients with equal weight and adds Gaussian noise of standard deviation
    ``noise_multiplier * max_update_norm / m``. Give either ``noise_multiplier`` (epsilon is then
    reported) or a target ``epsilon`` (the noise is calibrated so the last round spends it);
    ``delta`` is per client, as ``train.privacy.delta`` is per sample. Names follow ``train.privacy``.
    """

    max_update_norm: float = Field(1.0, gt=0.0)
    noise_multiplier: float | None = Field(None, gt=0.0)
    epsilon: float | None = Field(None, gt=0.0)
    delta: float = Field(gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _one_of(self) -> FederatedDPSpec:
        if (self.noise_multiplier is None) == (self.epsilon is None):
            given = "both" if self.noise_multiplier is not None else "neither"
            raise ValueError(
                f"expected exactly one of noise_multiplier (epsilon reported) or epsilon (noise calibrated), "
                f"received {given}"
            )
        return self


class SecureAggregationSpec(StrictModel):
    """``federated.secure_aggregation:`` — ``true``, or ``{threshold: t}`` (Bonawitz et al. 2017, federated/secure_round.py).

    Each drawn client t-of-n Shamir-shares its pair-mask key and its self-mask seed among the round's
    clients; the server can remove the masks of clients that drop after sharing as long as ``t``
    clients survive, and learns nothing from fewer than ``t`` colluding parties. Default ``t``:
    ceil(2/3 of clients_per_round), at least 2 (the paper's choice against an active adversary).
    """

    threshold: int | None = Field(None, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _count(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("threshold"), bool):
            raise ValueError(f"threshold: expected an integer >= 2, received {describe(data['threshold'])}")
        return data


def _secure_forms(data: Any) -> Any:
    """``true`` as ``{}`` (the default threshold), ``false`` as unset."""
    if data is True:
        return {}
    if data is False:
        return None
    return data


class FederatedSpec(StrictModel):
    """``federated:`` — train the spec's network from its training data split among clients.

    Each round, ``clients_per_round`` clients (all by default) are drawn, each trains the global
    weights for ``local_epochs`` epochs on its own part with the spec's ``train`` settings, and the
    strategy combines what they return into the next global weights.
    """

    clients: int = Field(ge=2)
    partition: PartitionSpec = Field(default_factory=lambda: PartitionSpec(type="iid"))
    rounds: int = Field(ge=1)
    clients_per_round: int | None = Field(None, ge=1)
    local_epochs: int = Field(1, ge=1)
    strategy: StrategySpec = Field(default_factory=lambda: StrategySpec(type="fedavg"))
    seed: int | None = None  # the partition's and the client draw's; the spec's seed when unset
    dp: FederatedDPSpec | None = None  # client-level DP: clipped, noised updates (federated/dp.py)
    # the server sees only the sum of masked updates, and recovers from dropouts (federated/secure_round.py)
    secure_aggregation: SecureAggregationSpec | None = None
    # simulation: this fraction of each round's drawn clients (rounded down, seeded) drops after the
    # keys are shared and before its update arrives, as a deployed client that fails mid-round
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # simulation: every client's part of the training split on this machine; deployed: the aggregator
    # runs in the control plane and each client is a `modelyard federated join` process with its own data.
    mode: Literal["simulation", "deployed"] = "simulation"
    quorum: int | None = Field(
        None, ge=1
    )  # deployed: updates a round needs at its timeout (default: every drawn client)
    round_timeout_s: float | None = Field(None, gt=0.0, le=86_400.0)  # deployed: default 300

    @model_validator(mode="before")
    @classmethod
    def _counts(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("clients", "rounds", "clients_per_round", "local_epochs", "quorum"):
                if isinstance(data.get(key), bool):
                    raise ValueError(f"{key}: expected a positive integer, received {describe(data[key])}")
            if "secure_aggregation" in data:
                if not isinstance(data["secure_aggregation"], (bool, dict, SecureAggregationSpec, type(None))):
                    raise ValueError(
                        "secure_aggregation: expected true, false or {threshold: t}, received "
                        f"{describe(data['secure_aggregation'])}"
                    )
                data = {**data, "secure_aggregation": _secure_forms(data["secure_aggregation"])}
            if isinstance(data.get("dropout"), bool):
                raise ValueError(f"dropout: expected a fraction in [0, 1), received {describe(data['dropout'])}")
        return data

    @model_validator(mode="after")
    def _per_round(self) -> FederatedSpec:
        if self.clients_per_round is not None and self.clients_per_round > self.clients:
            raise ValueError(
                f"clients_per_round: expected at most clients ({self.clients}), received {self.clients_per_round}"
            )
        if self.secure_aggregation is not None:
            self._threshold(self.secure_aggregation)
        self._deployed_options()
        if self.dp is not None and self.dp.delta >= 1.0 / self.clients:
            raise ValueError(
                f"dp.delta: expected a value below 1/clients = 1/{self.clients} ({1.0 / self.clients:.3g}) "
                f"(a larger delta allows leaking a whole client), received {self.dp.delta:g}"
            )
        return self

    def _threshold(self, secure: SecureAggregationSpec) -> None:
        if self.per_round < 2:
            raise ValueError(
                f"secure_aggregation: expected clients_per_round >= 2 (the sum of one client's update is that "
                f"update), received {self.per_round}"
            )
        if secure.threshold is None:
            object.__setattr__(secure, "threshold", max(2, -(-2 * self.per_round // 3)))
        elif secure.threshold > self.per_round:
            raise ValueError(
                f"secure_aggregation.threshold: expected at most clients_per_round ({self.per_round}), the clients "
                f"that hold a share, received {secure.threshold}"
            )

    def _deployed_options(self) -> None:
        if self.mode == "simulation":
            for key in ("quorum", "round_timeout_s"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key}: applies to mode deployed (a simulated client always answers); expected it unset "
                        f"with mode simulation, received {getattr(self, key)!r}"
                    )
            return
        if self.dropout:
            raise ValueError(
                "dropout: applies to mode simulation (a deployed client drops on its own); expected 0 with mode "
                f"deployed, received {self.dropout:g}"
            )
        if self.quorum is not None and self.quorum > self.per_round:
            raise ValueError(
                f"quorum: expected at most clients_per_round ({self.per_round}), the updates a round can get, "
                f"received {self.quorum}"
            )
        if self.partition.type != "iid":  # the default, which a stored spec writes out
            raise ValueError(
                "partition: a deployed federation's clients hold their own data; expected no partition with "
                f"mode deployed, received {self.partition.type!r}"
            )
        if self.secure_aggregation is not None and self.secure_aggregation.threshold > self.min_updates:
            raise ValueError(
                f"quorum: expected at least secure_aggregation.threshold ({self.secure_aggregation.threshold}) with "
                f"secure aggregation (fewer survivors cannot unmask the sum), received {self.min_updates}"
            )

    @property
    def min_updates(self) -> int:
        """The updates a deployed round needs when its timeout passes."""
        return self.per_round if self.quorum is None else self.quorum

    @property
    def timeout_s(self) -> float:
        return 300.0 if self.round_timeout_s is None else float(self.round_timeout_s)

    @property
    def per_round(self) -> int:
        return self.clients if self.clients_per_round is None else self.clients_per_round
