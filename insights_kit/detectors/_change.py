"""Shared history-novelty model of PolicyChangeInsight and PasswordChangeInsight.

A *change* is a successful call whose (lower-case ``serviceName``, ``eventName``) is listed
under the insight type in ``sensitive_events.json`` (calls listed under ``_other_user_only``
count only when ``requestUserName`` is another user than the caller). Each change is scored
against the unit's own history of its caller, the *principal* (``principalId``):

==================  ======  ===============================================================
evidence            weight  true when
==================  ======  ===============================================================
new principal       0.4     the principal's first call in the unit is recent
new changer         0.3     the principal's first change of this type is recent
new network         0.35    neither the address's /24 (IPv6 /64) nor its ASN was used by the
                            principal before the recent window (private addresses share one
                            ASN key, "private": a VPC is one network)
new tool            0.2     the user-agent family (``aws-cli``, ``aliyuncli``) is recent for
                            the principal
first admin grant   0.6     the change grants admin rights (``grantsAdmin``) and the principal
                            never made such a grant before
outside trust       0.6     the change lets another account (or anyone) assume a role
                            (``trustsOutside``) and the principal never did so before
another user        0.2     (PasswordChangeInsight) it acts on another user's credentials
burst               0.6     the principal's changes in the last hour reach ``burst_min`` and
                            ``burst_factor`` x its busiest earlier hour
==================  ======  ===============================================================

*Recent* means first seen less than ``novelty_hours`` before the call (or at it): the
attacker's own reconnaissance minutes before the change must not make its address look
familiar. A change whose score (the sum) reaches ``threshold`` is unusual. So a known
changer from a new network with a new tool (a stolen admin key, 0.55) is raised, while a
known changer from a new office address (0.35), a first change from the usual place and tool
(0.3) or a self-service password change are not. Changes in the unit's first
``learning_hours`` only feed the history: this model's own learning period, 12 hours by
default, shorter than ``[detect] learning_hours``, because first-seen evidence needs only a
history longer than ``novelty_hours`` (and an intruder's first change often comes within a
day of the trail's start). Allow-listed principals are never raised.

Incidents are left out of the history (the calls from ``novelty_hours`` before one to its
end). For networks and tools, every incident: an intruder who comes back from the same
network with the same tool is new again, however often it comes, while a role's own network
and tool are known from its calls outside incidents. For the principal, its changes and its
admin grants, the first incident and every incident from a new network or with a new tool:
behaviour that recurs from the principal's own place and tool (a new IaC role's daily grant)
becomes known, while an intruder's grant never makes the next one look routine.

Incidents: a principal's changes closer than ``end_quiet_minutes`` are a session; a session
with an unusual change is in the incident from its first change (``startTime``), and the Start
fires at its first unusual change (``firedAt``, whose score and evidence ``model`` carries);
unusual sessions of one service closer than that are one incident
(insightObject = the ``serviceName`` as the event spells it, ``Ram``/``iam``); its count is
every change the incident's principals made in its span. The End follows that much quiet.
``model`` carries the score (higher = more anomalous) and the evidence that made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from insights_kit.detectors.base import UnitContext, conform_incidents, empty_incidents
from insights_kit.detectors.sensitive import event_names, names_listed
from insights_kit.validate import check_range

#: Evidence name -> (weight, the column that says it), in the order ``model`` lists it.
EVIDENCE = ("newPrincipal", "newChanger", "newNetwork", "newTool", "firstAdminGrant", "outsideTrust", "otherUser",
            "burst")  # fmt: skip


@dataclass(frozen=True)
class ChangeConfig:
    """Parameters of the change model (shared by PolicyChange and PasswordChange).

    Parameters
    ----------
    threshold : float, default 0.55
        Score at or above which a change is unusual (0 < threshold <= 3).
    learning_hours : int, default 12
        Changes in the unit's first this-many hours only feed the history (0 to 720).
    novelty_hours : int, default 6
        A principal, network, tool or changer first seen less than this long before a change
        is new (1 to 720).
    burst_min : int, default 10
        Changes in one hour that can be a burst (>= 2).
    burst_factor : float, default 3.0
        ... and how many times the principal's busiest earlier hour they must reach (>= 1).
    end_quiet_minutes : int, default 60
        Unusual changes closer than this are one incident, and a principal's later changes
        closer than this continue its incident (1 to 1440). An hour, as IpInsight's sessions:
        an escalation's steps come minutes to an hour apart.
    weight_new_principal, weight_new_changer, weight_new_network, weight_new_tool,
    weight_first_admin, weight_outside_trust, weight_other_user, weight_burst : float
        The evidence weights of the table above (0 to 3 each).
    allowed_principals : tuple of str, default ()
        principalIds never raised (added to the allow-list's ``principal:`` lines).
    event_names_file : str, default ""
        A JSON file shaped like the packaged ``sensitive_events.json``; empty = the packaged one.
    """

    threshold: float = 0.55
    learning_hours: int = 12
    novelty_hours: int = 6
    burst_min: int = 10
    burst_factor: float = 3.0
    end_quiet_minutes: int = 60
    weight_new_principal: float = 0.4
    weight_new_changer: float = 0.3
    weight_new_network: float = 0.35
    weight_new_tool: float = 0.2
    weight_first_admin: float = 0.6
    weight_outside_trust: float = 0.6
    weight_other_user: float = 0.2
    weight_burst: float = 0.6
    allowed_principals: tuple[str, ...] = ()
    event_names_file: str = ""

    def __post_init__(self) -> None:
        check_range("threshold", self.threshold, low=0.01, high=3.0)
        check_range("learning_hours", self.learning_hours, low=0, high=720)
        check_range("novelty_hours", self.novelty_hours, low=1, high=720)
        check_range("burst_min", self.burst_min, low=2)
        check_range("burst_factor", self.burst_factor, low=1.0)
        check_range("end_quiet_minutes", self.end_quiet_minutes, low=1, high=1440)
        for evidence, value in self.weights().items():
            check_range(_WEIGHT_FIELDS[evidence], value, low=0.0, high=3.0)
        if self.event_names_file:
            event_names(self.event_names_file)  # a missing or malformed file is an error now

    def weights(self) -> dict[str, float]:
        """Evidence name -> its weight (the ``weight_*`` parameters)."""
        return {evidence: getattr(self, name) for evidence, name in _WEIGHT_FIELDS.items()}


#: Evidence name -> the config parameter that weighs it.
_WEIGHT_FIELDS = {
    "newPrincipal": "weight_new_principal", "newChanger": "weight_new_changer", "newNetwork": "weight_new_network",
    "newTool": "weight_new_tool", "firstAdminGrant": "weight_first_admin", "outsideTrust": "weight_outside_trust",
    "otherUser": "weight_other_user",
    "burst": "weight_burst",
}  # fmt: skip


def learning_end(ctx: UnitContext, config: ChangeConfig) -> datetime:
    """End of this model's learning period in the unit (its own ``learning_hours``)."""
    return ctx.data_start + timedelta(hours=config.learning_hours)


def first_seen(frame: pl.LazyFrame, keys: list[str], name: str) -> pl.LazyFrame:
    """The first ``eventTime`` per ``keys`` (null keys left out), as column ``name``."""
    return frame.drop_nulls(keys).group_by(keys).agg(pl.col("eventTime").min().alias(name))


def network_keys(addresses: pl.Series) -> pl.LazyFrame:
    """address -> ``_net`` (/24 or /64) and ``_asn`` (IpInsight's keys: ``private`` for private ones)."""
    from insights_kit import ipintel
    from insights_kit.detectors.ip_features import address_keys

    return address_keys(ipintel.ip_table(addresses)).select(
        pl.col("address").alias("sourceIpAddress"), pl.col("narrowPrefix").alias("_net"), pl.col("asnKey").alias("_asn")
    )


def score_changes(events: pl.LazyFrame, ctx: UnitContext, *, insight_type: str, config: ChangeConfig) -> pl.DataFrame:
    """Every change of the unit with its evidence columns, ``score`` and ``unusual``."""
    from insights_kit.detectors.ip_features import ua_family_expr

    cfg = config
    names = event_names(cfg.event_names_file)
    table = names_listed(insight_type, cfg.event_names_file)
    other_only = names.get("_other_user_only", {}).get("names", [])
    self_service = names.get("_self_service", {}).get("names", [])
    ev = events.filter(pl.col("eventTime") < ctx.data_end).select(
        "eventTime", "serviceName", "eventName", "principalId", "userName", "sourceIpAddress", "userAgent",
        "errorCode", "requestUserName", "grantsAdmin", "trustsOutside", ua_family_expr().alias("_tool"),
    )
    other_user = (
        pl.col("requestUserName").is_not_null()
        & (pl.col("requestUserName") != pl.col("userName").fill_null(""))
        & ~pl.col("eventName").is_in(self_service)
    )
    changes = (
        ev.filter(pl.col("errorCode").is_null() & pl.col("principalId").is_not_null())
        .with_columns(pl.col("serviceName").str.to_lowercase().alias("_service"))
        .join(table.lazy(), left_on=["_service", "eventName"], right_on=["service", "eventName"], how="semi")
        .filter(~pl.col("eventName").is_in(other_only) | other_user)
        .with_columns(other_user.alias("otherUser"))
        .sort("eventTime")
        .collect()
    )
    if changes.is_empty():
        return changes
    # Network keys only for the principals that changed something: their addresses are few.
    principals = changes.get_column("principalId").unique()
    theirs = ev.filter(pl.col("principalId").is_in(principals.implode()))
    addresses = theirs.select(pl.col("sourceIpAddress").unique()).collect().to_series()
    nets = network_keys(addresses)
    theirs = theirs.join(nets, on="sourceIpAddress", how="left").select(
        "eventTime", "principalId", "_net", "_asn", "_tool"
    ).collect()
    changes = changes.join(nets.collect(), on="sourceIpAddress", how="left")
    scored = _score(changes, theirs, changes, theirs, ctx, cfg, insight_type)
    # Incidents never teach the history what they did. A principal's calls from novelty_hours
    # before an incident's first unusual change to end_quiet_minutes after its last (the
    # intruder's recon, tool and network) are left out of the history:
    # - of networks and tools, for every incident: an intruder's network and tool never become
    #   familiar through its own attacks (a role's routine ones are familiar from its calls
    #   outside incidents);
    # - of the principal, its changes and its admin grants, for its first incident and for
    #   every incident from a new network or with a new tool: behaviour that recurs from the
    #   principal's own place (a new IaC role's daily grant) becomes known, instead of raising
    #   an insight forever, while an intruder's grants never make the next one routine.
    # Incidents found with a cleaner history can clean it further: up to MASK_PASSES passes.
    seen: pl.DataFrame | None = None
    for _ in range(MASK_PASSES):
        hits = scored.filter(pl.col("unusual") & ~pl.col("allowlisted")).select(
            "principalId", "eventTime", (pl.col("newNetwork") | pl.col("newTool")).alias("_foreign"))
        if hits.is_empty() or (seen is not None and hits.equals(seen)):
            break
        seen = hits
        runs = _incident_spans(hits, cfg)
        first, every = runs.filter((pl.col("_run") == 1) | pl.col("_foreign")), runs
        clean_calls = theirs.join(_tainted(theirs, first), on=["principalId", "eventTime"], how="anti")
        clean_changes = changes.join(_tainted(changes, first), on=["principalId", "eventTime"], how="anti")
        clean_tools = theirs.join(_tainted(theirs, every), on=["principalId", "eventTime"], how="anti")
        scored = _score(changes, clean_calls, clean_changes, clean_tools, ctx, cfg, insight_type)
    return scored


#: Passes of scoring with incidents left out of the history (see score_changes).
MASK_PASSES = 3


def _incident_spans(hits: pl.DataFrame, cfg: ChangeConfig) -> pl.DataFrame:
    """Per principal and incident run (``_run`` 1, 2, ...): the span its calls are left out of
    history, and ``_foreign``: a change of the run came from a new network or with a new tool."""
    quiet = timedelta(minutes=cfg.end_quiet_minutes)
    gap = pl.col("eventTime").diff().over("principalId")
    return (
        hits.select("principalId", "eventTime", "_foreign")
        .sort("principalId", "eventTime")
        .with_columns((gap.is_null() | (gap >= quiet)).cum_sum().over("principalId").alias("_run"))
        .group_by("principalId", "_run")
        .agg(
            (pl.col("eventTime").min() - timedelta(hours=cfg.novelty_hours)).alias("_from"),
            (pl.col("eventTime").max() + quiet).alias("_to"),
            pl.col("_foreign").any(),
        )
        .sort("principalId", "_run")
    )


def _tainted(frame: pl.DataFrame, spans: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.select("principalId", "eventTime")
        .join(spans, on="principalId")
        .filter(pl.col("eventTime").is_between(pl.col("_from"), pl.col("_to")))
        .select("principalId", "eventTime")
        .unique()
    )


def _score(changes: pl.DataFrame, history: pl.DataFrame, history_changes: pl.DataFrame, tool_history: pl.DataFrame,
           ctx: UnitContext, cfg: ChangeConfig, insight_type: str) -> pl.DataFrame:  # fmt: skip
    """Score every change against ``history`` (calls: the principal), ``history_changes`` (its
    changes and admin grants) and ``tool_history`` (calls: its networks and tools)."""
    hist, tools = history.lazy(), tool_history.lazy()
    changes = (
        changes.lazy()
        .join(first_seen(hist, ["principalId"], "_p"), on="principalId", how="left")
        .join(first_seen(tools, ["principalId", "_net"], "_n"), on=["principalId", "_net"], how="left")
        .join(first_seen(tools, ["principalId", "_asn"], "_a"), on=["principalId", "_asn"], how="left")
        .join(first_seen(tools, ["principalId", "_tool"], "_t"), on=["principalId", "_tool"], how="left")
        .join(first_seen(history_changes.lazy(), ["principalId"], "_c"), on="principalId", how="left")
        .join(
            first_seen(history_changes.lazy().filter(pl.col("grantsAdmin").fill_null(False)), ["principalId"], "_g"),
            on="principalId",
            how="left",
        )
        .join(
            first_seen(history_changes.lazy().filter(pl.col("trustsOutside").fill_null(False)), ["principalId"], "_x"),
            on="principalId",
            how="left",
        )
        .sort("eventTime")
        .with_columns(pl.lit(1, pl.Int64).alias("_one"))
        .with_columns(pl.col("_one").rolling_sum_by("eventTime", window_size="1h").over("principalId").alias("_hour"))
        .collect()
    )
    # Busiest earlier hour of the history's changes, as it stood novelty_hours before.
    busiest = (
        history_changes.sort("eventTime")
        .with_columns(pl.lit(1, pl.Int64).alias("_one"))
        .select(
            "principalId",
            (pl.col("eventTime") + timedelta(hours=cfg.novelty_hours)).alias("_as_of"),
            pl.col("_one").rolling_sum_by("eventTime", window_size="1h").over("principalId").alias("_h"),
        )
        .with_columns(pl.col("_h").cum_max().over("principalId").alias("_busiest"))
        .sort("_as_of")
    )
    changes = changes.join_asof(
        busiest.select("principalId", "_as_of", "_busiest"),
        left_on="eventTime", right_on="_as_of", by="principalId", strategy="backward",
        check_sortedness=False,  # both sides sorted by time; Polars cannot check it per group
    )  # fmt: skip
    horizon = pl.col("eventTime") - timedelta(hours=cfg.novelty_hours)

    def recent(first: pl.Expr) -> pl.Expr:
        return first.is_null() | (first > horizon)

    admin = pl.col("grantsAdmin").fill_null(False)
    burst = (pl.col("_hour") >= cfg.burst_min) & (
        pl.col("_hour") >= cfg.burst_factor * pl.col("_busiest").fill_null(0)
    )
    evidence = {
        "newPrincipal": recent(pl.col("_p")),
        "newChanger": recent(pl.col("_c")),
        "newNetwork": recent(pl.col("_n")) & recent(pl.col("_a")) & pl.col("_net").is_not_null(),
        "newTool": recent(pl.col("_t")),
        "firstAdminGrant": admin & (pl.col("_g").is_null() | (pl.col("_g") >= pl.col("eventTime"))),
        "outsideTrust": pl.col("trustsOutside").fill_null(False)
        & (pl.col("_x").is_null() | (pl.col("_x") >= pl.col("eventTime"))),
        "otherUser": pl.col("otherUser") if insight_type == "PasswordChangeInsight" else pl.lit(False),
        "burst": burst,
    }
    weights = cfg.weights()
    score = pl.sum_horizontal([pl.when(evidence[k]).then(weights[k]).otherwise(0.0) for k in EVIDENCE])
    allowed = sorted(set(cfg.allowed_principals) | set(ctx.allowlist.principals))
    changes = changes.with_columns(**{k: v.fill_null(False) for k, v in evidence.items()}).with_columns(
        score.round(6).alias("score")
    )
    return changes.with_columns(
        ((pl.col("score") >= cfg.threshold) & (pl.col("eventTime") >= learning_end(ctx, cfg))).alias("unusual"),
        pl.col("principalId").is_in(allowed).alias("allowlisted"),
    )


def change_incidents(
    events: pl.LazyFrame, ctx: UnitContext, *, insight_type: str, config: ChangeConfig
) -> pl.DataFrame:
    """The incidents of one change type in the unit (INCIDENT_SCHEMA)."""
    scored = score_changes(events, ctx, insight_type=insight_type, config=config)
    if scored.is_empty():
        return empty_incidents()
    counters = {
        "changes": scored.height,
        "learning": scored.filter(pl.col("eventTime") < learning_end(ctx, config)).height,
        "allowlisted": scored.filter(pl.col("unusual") & pl.col("allowlisted")).height,
    }
    for key, value in counters.items():
        ctx.counters[key] = ctx.counters.get(key, 0) + value
    # A principal's changes closer than end_quiet_minutes are one session; a session with an
    # unusual change is all in the incident, from its first change (an escalation whose first
    # step scores lower, such as adding a user to a group with a known client, starts there;
    # the Start fires at the first unusual change).
    quiet = timedelta(minutes=config.end_quiet_minutes)
    gap = pl.col("eventTime").diff().over("principalId")
    scored = (
        scored.sort("principalId", "eventTime")
        .with_columns((gap.is_null() | (gap >= quiet)).cum_sum().over("principalId").alias("_session"))
        .with_columns(pl.col("unusual").any().over("principalId", "_session").alias("_in_incident"))
        .sort("eventTime", "principalId")
    )
    hits = scored.filter(pl.col("_in_incident") & ~pl.col("allowlisted"))
    if hits.is_empty():
        return empty_incidents()
    return conform_incidents(_incidents(hits, scored, ctx, insight_type, config)).sort("startTime", "insightObject")


def _incidents(hits: pl.DataFrame, scored: pl.DataFrame, ctx: UnitContext, insight_type: str,
               config: ChangeConfig) -> pl.DataFrame:  # fmt: skip
    quiet = timedelta(minutes=config.end_quiet_minutes)
    minute = pl.col("eventTime").dt.truncate("1m")
    hits = hits.with_columns(minute.alias("_minute")).sort("serviceName", "eventTime")
    gap = pl.col("_minute").diff().over("serviceName")
    hits = hits.with_columns((gap.is_null() | (gap >= quiet)).cum_sum().over("serviceName").alias("_incident"))
    # The model is what the Start knew (its first unusual minute), so a later window cannot change it.
    fired = pl.col("_minute").filter(pl.col("unusual")).min()
    first = pl.col("unusual") & (pl.col("_minute") == fired)
    grouped = hits.group_by("serviceName", "_incident", maintain_order=True).agg(
        pl.col("_minute").min().alias("startTime"),
        fired.alias("firedAt"),
        pl.col("_minute").max().alias("_last"),
        pl.col("score").filter(first).max().alias("_score"),
        pl.col("principalId").unique().sort().alias("_principals"),
        pl.col("principalId").filter(first).unique().sort().alias("_first_principals"),
        *[pl.col(k).filter(first).any().alias(f"_{k}") for k in EVIDENCE],
    )
    # insightCount: every change (unusual or not) of the incident's principals in its span.
    spans = grouped.select("serviceName", "_incident", "startTime", "_last", "_principals").explode("_principals")
    within = (
        scored.with_columns(minute.alias("_minute"))
        .join(spans, left_on=["serviceName", "principalId"], right_on=["serviceName", "_principals"])
        .filter(pl.col("_minute").is_between(pl.col("startTime"), pl.col("_last")))
        .group_by("serviceName", "_incident")
        .agg(pl.len().alias("insightCount"))
    )
    grouped = grouped.join(within, on=["serviceName", "_incident"], how="left").with_columns(
        pl.col("serviceName").str.to_lowercase().alias("_service")
    )
    # The related events: every change name of the service (the Start's and End's attributions).
    listed = names_listed(insight_type, config.event_names_file)
    service_names = listed.group_by("service").agg(pl.col("eventName").sort().alias("_service_names"))
    grouped = grouped.join(service_names, left_on="_service", right_on="service", how="left")
    closed = pl.col("_last") + quiet <= ctx.data_end
    duration = ((pl.col("_last") - pl.col("startTime")).dt.total_minutes() + 1).cast(pl.Int64)
    baseline = (pl.col("startTime") - pl.lit(ctx.data_start)).dt.total_minutes().clip(lower_bound=0)
    model = pl.struct(
        pl.lit("change unusual for its principal's history").alias("rule"),
        pl.col("_score").alias("score"),
        pl.lit(config.threshold).alias("threshold"),
        pl.concat_list([pl.when(pl.col(f"_{k}")).then(pl.lit(k)) for k in EVIDENCE]).list.drop_nulls().alias("evidence"),
        pl.col("_service_names").alias("eventNames"),
        pl.col("_first_principals").alias("principals"),
    ).struct.json_encode()
    return grouped.select(
        pl.lit(insight_type).alias("insightType"),
        pl.col("serviceName").alias("insightObject"),
        pl.col("serviceName"),
        pl.col("startTime"),
        pl.when(closed).then(pl.col("_last") + timedelta(minutes=1)).alias("endTime"),
        pl.lit(0.0).alias("baselineAverage"),
        baseline.cast(pl.Int64).alias("baselineDuration"),
        pl.col("insightCount").cast(pl.Float64).alias("insightAverage"),
        duration.alias("insightDuration"),
        pl.col("insightCount").cast(pl.Int64),
        pl.col("firedAt"),
        model.alias("model"),
    )


