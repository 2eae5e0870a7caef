"""HTTP: experiments — hosts define and run them, users get assignments and record exposures.

Thin handlers: decode (the models below), call the service, answer. docs/experiments.md
describes the semantics and every statistic in the results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, Query, Reply, to
from livecommerce.api.types import Id, Time, check_time
from livecommerce.errors import ValidationError
from livecommerce.growth.experiments import assignments, results, service

MAX_VARIANTS = 20  # as WeChat's own experiments (wx.getExptInfoSync) allow
Key = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_.-]*(?!\n)$",
        description="Lower-case letters, digits, `_`, `.`, `-`",
    ),
]
Share = Annotated[float, Meta(ge=0, le=1)]
Weight = Annotated[float, Meta(gt=0, le=1, description="A share of the covered users")]
Metric = Literal["paid_conversion", "gmv_fen", "paid_orders"]
State = Literal["draft", "running", "stopped"]
Description = Annotated[str, Meta(max_length=500)]
Seed = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]


class ExperimentVariantSpec(Body):
    """One variant; the first is the control."""

    key: Key
    name: Annotated[str, Meta(max_length=100)] = ""


class ExperimentNamespaceSpec(Body):
    """A GrowthBook namespace: experiments with the same `id` and disjoint `[start, end)`
    never share a user."""

    id: Key
    start: Share
    end: Annotated[Share, Meta(description="After `start`")]

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValidationError("namespace", "end must be after start")


Variants = Annotated[list[ExperimentVariantSpec], Meta(min_length=2, max_length=MAX_VARIANTS)]
Weights = Annotated[
    list[Weight],
    Meta(min_length=2, max_length=MAX_VARIANTS, description="One per variant, summing to 1"),
]
Guardrails = Annotated[list[Metric], Meta(max_length=3)]


def _check_variants(variants: list[ExperimentVariantSpec]) -> None:
    if len({v.key for v in variants}) != len(variants):
        raise ValidationError("variants", "variant keys must be unique")


def _check_window(starts: datetime | None, ends: datetime | None) -> None:
    if starts is not None:
        check_time("starts_at", starts)
    if ends is not None:
        check_time("ends_at", ends)
    if starts is not None and ends is not None and ends <= starts:
        raise ValidationError("ends_at", "must be after starts_at")


class ExperimentCreate(Body):
    """A new experiment (created as a draft)."""

    key: Key
    variants: Variants
    description: Description = ""
    weights: Annotated[Weights | None, Meta(description="Default: equal weights")] = None
    coverage: Annotated[Share, Meta(description="Share of users included")] = 1.0
    seed: Annotated[Seed | None, Meta(description="Hash seed; default: the key")] = None
    namespace: ExperimentNamespaceSpec | None = None
    starts_at: Time | None = None
    ends_at: Time | None = None
    primary_metric: Metric = "paid_conversion"
    guardrail_metrics: Guardrails = msgspec.field(default_factory=list)
    sticky: Annotated[bool, Meta(description="Keep exposed users in their variant")] = True

    def __post_init__(self) -> None:
        _check_variants(self.variants)
        _check_window(self.starts_at, self.ends_at)


class ExperimentUpdate(Body):
    """The fields to change (absent fields stay). Variants only in a draft; nothing once stopped."""

    description: Description | msgspec.UnsetType = msgspec.UNSET
    variants: Variants | msgspec.UnsetType = msgspec.UNSET
    weights: Weights | msgspec.UnsetType = msgspec.UNSET
    coverage: Share | msgspec.UnsetType = msgspec.UNSET
    namespace: ExperimentNamespaceSpec | msgspec.UnsetType | None = msgspec.UNSET
    starts_at: Time | msgspec.UnsetType | None = msgspec.UNSET
    ends_at: Time | msgspec.UnsetType | None = msgspec.UNSET
    primary_metric: Metric | msgspec.UnsetType = msgspec.UNSET
    guardrail_metrics: Guardrails | msgspec.UnsetType = msgspec.UNSET
    sticky: bool | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.variants, msgspec.UnsetType):
            _check_variants(self.variants)
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                check_time(name, value)


class ExperimentAction(Body):
    """No fields: the body may be empty or `{}`."""


class ExperimentListQuery(Query):
    """How many experiments to list (newest first)."""

    limit: Annotated[int, Meta(ge=1, le=100)] = 50


class ExperimentAssignmentsQuery(Query):
    """Whose running experiments (absent: every host's). Keys are unique per host only, so a
    client that names experiments by key scopes the answer to the room's host."""

    host_id: Annotated[Id | None, Meta(description="Only this host's experiments")] = None
    room_id: Annotated[
        Id | None, Meta(description="Only the experiments of this live room's host")
    ] = None

    def __post_init__(self) -> None:
        if self.host_id is not None and self.room_id is not None:
            raise ValidationError("room_id", "give host_id or room_id, not both")


class ExperimentVariant(Model):
    key: str
    name: str


class ExperimentNamespace(Model):
    id: str
    start: float
    end: float


class ExperimentChange(Model):
    """A recorded change: the weights and coverage in force from `changed_at` on."""

    change: Literal["created", "updated", "started", "stopped"]
    weights: list[float]
    coverage: float
    state: State
    changed_at: datetime


class Experiment(Model):
    """An experiment definition."""

    id: int
    key: str
    description: str
    variants: list[ExperimentVariant]
    weights: list[float]
    coverage: float
    seed: str
    namespace: ExperimentNamespace | None
    starts_at: datetime | None
    ends_at: datetime | None
    primary_metric: Metric
    guardrail_metrics: list[Metric]
    sticky: bool
    state: State
    started_at: datetime | None
    stopped_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ExperimentDetail(Experiment):
    """An experiment with its change log (oldest first)."""

    changes: list[ExperimentChange]


class ExperimentList(Model):
    experiments: list[Experiment]


class ExperimentAssignment(Model):
    """The caller's variant in one running experiment (`variant` null: not included)."""

    experiment_id: int
    host_id: Annotated[
        int, Meta(description="The experiment's host: keys are unique per host, not globally")
    ]
    key: str
    variant: int | None
    variant_key: str | None
    sticky: bool


class ExperimentDefinition(Model):
    """What a client needs to bucket offline with GrowthBook hash v2 over its openid."""

    id: int
    host_id: Annotated[
        int, Meta(description="The experiment's host: keys are unique per host, not globally")
    ]
    key: str
    seed: str
    weights: list[float]
    coverage: float
    namespace: ExperimentNamespace | None
    variants: list[str]


class ExperimentAssignments(Model):
    """The caller's assignments and the running experiments' definitions."""

    assignments: list[ExperimentAssignment]
    definitions: list[ExperimentDefinition]
    hash: Literal["growthbook-fnv32a-v2"] = "growthbook-fnv32a-v2"


class ExperimentExposure(Model):
    """The exposure recorded (`recorded` false: already recorded, or not included)."""

    assignment: ExperimentAssignment
    recorded: bool


class ExperimentVariantCount(Model):
    variant: int
    key: str
    weight: float
    users: int


class ExperimentSrm(Model):
    """Sample-ratio mismatch (chi-squared against the weights; computed from 100 users)."""

    p_value: float | None
    chi_squared: float | None
    status: Literal["ok", "warning", "error", "not_enough_data"]


class ExperimentMetricVariant(Model):
    """One variant's data: exposed users, the metric's total and mean (rate) per user."""

    variant: int
    users: int
    total: float
    mean: float


class ExperimentComparison(Model):
    """A variant against the control (variant 0); null where not computable."""

    variant: int
    absolute_lift: float | None
    absolute_ci: list[float] | None
    relative_lift: float | None
    relative_ci: list[float] | None
    p_value: float | None
    test: str
    p_value_holm: float | None
    sequential_p_value: float | None
    sequential_relative_ci: list[float] | None


class ExperimentMetricResult(Model):
    metric: Metric
    role: Literal["primary", "guardrail"]
    kind: Literal["binomial", "continuous"]
    variants: list[ExperimentMetricVariant]
    comparisons: list[ExperimentComparison]


class ExperimentResults(Model):
    """Per-variant results with health checks (see docs/experiments.md for every formula)."""

    experiment_id: int
    state: State
    variants: list[ExperimentVariantCount]
    multi_variant_users: int
    srm: ExperimentSrm
    warnings: list[str]
    metrics: list[ExperimentMetricResult]


def _spec(body: msgspec.Struct) -> dict[str, Any]:
    """A body as a dict of the fields that were sent (nested structs as dicts, times kept)."""
    raw = msgspec.to_builtins(body, builtin_types=(datetime,))
    assert isinstance(raw, dict)
    return raw


async def create(call: Call[ExperimentCreate, None]) -> Experiment:
    """Create an experiment (a draft).

    409 `key_taken` when the host already has an experiment with this key (keys are unique per
    host: another host's experiments never conflict).
    """
    return to(
        Experiment, await service.create(call.app[keys.PG_POOL], call.host_id, _spec(call.body))
    )


async def list_experiments(call: Call[None, ExperimentListQuery]) -> ExperimentList:
    """List the host's experiments, newest first."""
    rows = await service.list_for_host(call.app[keys.PG_POOL], call.host_id, call.query.limit)
    return ExperimentList(experiments=[to(Experiment, r) for r in rows])


async def read(call: Call[None, None]) -> ExperimentDetail:
    """Read one of the host's experiments with its change log."""
    return to(ExperimentDetail, await service.get(call.app[keys.PG_POOL], call.host_id, call.id()))


async def update(call: Call[ExperimentUpdate, None]) -> Experiment:
    """Change an experiment; weight and coverage changes are recorded in its change log.

    409 `experiment_stopped` (a stopped experiment is frozen), `not_a_draft` (variants change
    only in a draft).
    """
    pool = call.app[keys.PG_POOL]
    return to(Experiment, await service.update(pool, call.host_id, call.id(), _spec(call.body)))


async def start(call: Call[ExperimentAction, None]) -> Experiment:
    """Start a draft experiment. 409 `bad_state` unless it is a draft."""
    pool = call.app[keys.PG_POOL]
    return to(Experiment, await service.set_state(pool, call.host_id, call.id(), "running"))


async def stop(call: Call[ExperimentAction, None]) -> Experiment:
    """Stop a running experiment. 409 `bad_state` unless it is running."""
    pool = call.app[keys.PG_POOL]
    return to(Experiment, await service.set_state(pool, call.host_id, call.id(), "stopped"))


async def read_results(call: Call[None, None]) -> ExperimentResults:
    """Results: per-variant metrics, lifts with 95 % CIs, p-values (fixed-horizon, Holm-adjusted
    and always-valid sequential), SRM and sample-size checks."""
    return to(
        ExperimentResults, await results.compute(call.app[keys.PG_POOL], call.host_id, call.id())
    )


async def my_assignments(call: Call[None, ExperimentAssignmentsQuery]) -> ExperimentAssignments:
    """The caller's variant in every running experiment, plus the definitions to bucket offline.

    `host_id` or `room_id` (that room's host) keeps one host's experiments: keys are unique per
    host only, so an unscoped answer may hold two experiments with one key (each item has its
    `host_id`). 404 for an unknown room. Reading assignments records no exposure: call
    `POST /api/experiments/{id}/exposures` when the variant is shown.
    """
    pool, q = call.app[keys.PG_POOL], call.query
    host_id = q.host_id if q.room_id is None else await assignments.host_of_room(pool, q.room_id)
    found, running = await assignments.for_user(pool, call.user_id, host_id)
    definitions = [{**e, "variants": [v["key"] for v in e["variants"]]} for e in running]
    return ExperimentAssignments(
        assignments=[to(ExperimentAssignment, a) for a in found],
        definitions=[to(ExperimentDefinition, d) for d in definitions],
    )


async def expose(call: Call[ExperimentAction, None]) -> Reply[ExperimentExposure]:
    """Record that the caller was shown their variant (201 new, 200 already recorded/not included).

    Once per user, experiment and variant. 409 `not_running` unless the experiment is running.
    """
    a, created = await assignments.expose(call.app[keys.PG_POOL], call.user_id, call.id())
    return Reply(
        ExperimentExposure(assignment=to(ExperimentAssignment, a), recorded=created),
        status=201 if created else 200,
    )
