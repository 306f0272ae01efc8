"""AkInsight: one AccessKey used unusually (insightObject = the AccessKey ID).

Two rules, one insight type:

* **rate**: the per-minute count of a key's calls (read and write) in the region against its
  own seasonal history, with the count model and Start/End rules of the rate detectors
  (:mod:`insights_kit.detectors._rate`, :class:`AkConfig` inherits every parameter). A key is
  judged only once it has ``key_learning_hours`` of history in the unit: a new key has no
  pattern yet, and its first use is the other rule's job. The rule is about *sustained*
  misuse (a scraper, exfiltration, a runaway script on a user's key): a run of hot minutes
  raises the Start only once it has lasted ``sustain_minutes``; the Start keeps the run's
  first minute as its time and says when it fired (``firedAt``). A dashboard's two-minute
  refresh burst is the key's pattern, not an incident; a short teardown burst is found by
  ApiCallRateInsight and IpInsight. The minutes of a hot run's first ``accept_after_hours``
  never feed the key's baseline (two passes: find the runs, sustained or not, then score again
  without them), so yesterday's abuse does not hide today's, and a burst's first minutes do not
  raise the next hour's level and cut the burst short; a level that stays up longer than that
  becomes the key's new normal.
* **first use**: a long-term key never seen before (its first call in the unit comes after
  the rule's own ``first_use_learning_hours``, 12 by default, like the change models') whose calls come from a network its owner (``principalId``)
  does not use: neither the /24 (IPv6 /64) nor the ASN was used by the owner more than
  ``novelty_hours`` before the key's first call. An owner with no history at all is judged
  against the whole account: a new colleague's first key from the office stays quiet. A key
  rotated by automation and used from the usual address is quiet; the attacker's fresh key
  used from abroad is not. Calls from new networks in the key's first ``novelty_hours`` are
  one incident per ``end_quiet_minutes`` of quiet.

Temporary credentials (``temporary_key_prefixes``: AWS ``ASIA``, Alibaba ``STS.``) live for
hours, so neither rule applies to them: their owner's role is judged by the other types.
"Never seen" is per unit (account, region): a key used in two regions is new in each.
Scores: the rate rule's p-value (small = anomalous) is in ``model``; the first-use rule's
``model.score`` is 1.0. Higher means more anomalous, as everywhere in the package.

Examples
--------
>>> det = AkDetector(AkConfig(novelty_hours=12))
>>> det.insight_type, det.config.key_learning_hours
('AkInsight', 24)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import polars as pl

from insights_kit.detectors._change import first_seen, network_keys
from insights_kit.detectors._rate import RateConfig, score_minutes, segment_incidents, select_events
from insights_kit.detectors.base import Detector, UnitContext, conform_incidents, empty_incidents
from insights_kit.features import minute_counts
from insights_kit.validate import check_range

__all__ = ["AkConfig", "AkDetector"]

_TYPE = "AkInsight"
_KEY = ["accessKeyId"]


@dataclass(frozen=True)
class AkConfig(RateConfig):
    """AkInsight parameters: the rate model's (:class:`RateConfig`) and the first-use rule's.

    Parameters
    ----------
    key_learning_hours : int, default 24
        History a key needs before the rate rule judges it (1 to 720).
    sustain_minutes : int, default 6
        Minutes a run of hot minutes must last before the rate rule raises it (1 to 120).
    accept_after_hours : int, default 6
        An incident's minutes after this many hours feed the baseline again (0 to 720).
    first_use_learning_hours : int, default 12
        Keys first used in the unit's first this-many hours are history, not new (0 to 720).
    novelty_hours : int, default 6
        A network the owner first used less than this long before the key's first call is
        new; the first-use incident covers the key's first this-many hours (1 to 720).
    first_use_quiet_minutes : int, default 60
        First-use calls closer than this are one incident (1 to 1440).
    temporary_key_prefixes : tuple of str, default ("ASIA", "STS.")
        Key prefixes of temporary credentials, which neither rule judges.
    """

    min_count: int = 10
    key_learning_hours: int = 24
    sustain_minutes: int = 6
    accept_after_hours: int = 6
    first_use_learning_hours: int = 12
    novelty_hours: int = 6
    first_use_quiet_minutes: int = 60
    temporary_key_prefixes: tuple[str, ...] = ("ASIA", "STS.")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("key_learning_hours", self.key_learning_hours, low=1, high=720)
        check_range("sustain_minutes", self.sustain_minutes, low=1, high=120)
        check_range("accept_after_hours", self.accept_after_hours, low=0, high=720)
        check_range("first_use_learning_hours", self.first_use_learning_hours, low=0, high=720)
        check_range("novelty_hours", self.novelty_hours, low=1, high=720)
        check_range("first_use_quiet_minutes", self.first_use_quiet_minutes, low=1, high=1440)


class AkDetector(Detector):
    """Detect unusual use of one AccessKey (AkInsight).

    Parameters
    ----------
    config : AkConfig, optional
        Model and incident parameters (defaults: :class:`AkConfig`).
    """

    insight_type: ClassVar[str] = _TYPE

    def __init__(self, config: AkConfig | None = None) -> None:
        super().__init__(config or AkConfig())

    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        """Return every AkInsight incident of the unit (INCIDENT_SCHEMA)."""
        cfg = self.config
        temporary = pl.any_horizontal([pl.col("accessKeyId").str.starts_with(p) for p in cfg.temporary_key_prefixes])
        keyed = (
            select_events(events, cfg)
            .filter((pl.col("eventTime") < ctx.data_end) & pl.col("accessKeyId").is_not_null() & ~temporary)
            .select("eventTime", "accessKeyId", "principalId", "sourceIpAddress", "eventCategory")
            .collect()
        )
        if keyed.is_empty():
            return empty_incidents()
        first_seen = keyed.group_by("accessKeyId").agg(pl.col("eventTime").min().alias("_first"))
        frames = [self._rate(keyed, first_seen, ctx), self._first_use(events, keyed, first_seen, ctx)]
        frames = [f for f in frames if f.height]
        if not frames:
            return empty_incidents()
        return pl.concat(frames).sort("startTime", "insightObject")

    def _rate(self, keyed: pl.DataFrame, first_seen: pl.DataFrame, ctx: UnitContext) -> pl.DataFrame:
        cfg = self.config
        counts = minute_counts(keyed.lazy(), by=_KEY).collect()
        counters: dict[str, int] = {}
        # The first pass keeps every run, sustained or not: a burst's first minutes raise the
        # next hour's "recent" level, and a run cut there at minute three must still leave
        # the baseline, or the burst's other eighteen minutes look normal.
        inc = self._segments(counts, counts, first_seen, ctx, counters, sustained_only=not cfg.accept_after_hours)
        if inc.height and cfg.accept_after_hours:
            # Second pass: the runs' first accept_after_hours leave the baseline.
            accept = timedelta(hours=cfg.accept_after_hours)
            until = pl.min_horizontal(pl.coalesce(pl.col("endTime"), pl.lit(ctx.data_end)), pl.col("startTime") + accept)
            inside = (
                inc.select("accessKeyId", "startTime", until.alias("_until"))
                .join(counts.select("accessKeyId", "minute"), on="accessKeyId")
                .filter((pl.col("minute") >= pl.col("startTime")) & (pl.col("minute") < pl.col("_until")))
                .select("accessKeyId", "minute")
                .unique()
            )
            # Only the keys that had an incident are scored again; the others' result stands.
            again = inside.select("accessKeyId").unique()
            baseline = counts.join(again, on="accessKeyId").join(inside, on=["accessKeyId", "minute"], how="anti")
            rescored = self._segments(baseline, counts.join(again, on="accessKeyId"), first_seen, ctx, {})
            inc = pl.concat([inc.join(again, on="accessKeyId", how="anti"), rescored]).sort("startTime", "accessKeyId")
        for key, value in counters.items():
            ctx.counters[key] = ctx.counters.get(key, 0) + value
        if inc.is_empty():
            return empty_incidents()
        inc = inc.with_columns(
            (pl.col("startTime") + timedelta(minutes=cfg.sustain_minutes - 1)).alias("firedAt"),
            pl.lit(_TYPE).alias("insightType"),
            pl.col("accessKeyId").alias("insightObject"),
            # one dict per incident: name the rule beside the rate model's fields
            pl.Series("model", [json.dumps({"rule": "rate", **json.loads(m)}, sort_keys=True) for m in inc["model"]],
                      dtype=pl.String),
        )
        return conform_incidents(inc)

    def _segments(self, baseline: pl.DataFrame, counts: pl.DataFrame, first_seen: pl.DataFrame,
                  ctx: UnitContext, counters: dict, *, sustained_only: bool = True) -> pl.DataFrame:  # fmt: skip
        """Incidents (sustained ones only, by default) of the keys' ``counts`` scored against ``baseline``."""
        cfg = self.config
        scored = score_minutes(baseline, counts, keys=_KEY, data_start=ctx.data_start, config=cfg)
        # A key too young for a pattern is never started: its minutes are not start minutes.
        mature = pl.col("minute") >= pl.col("_first") + timedelta(hours=cfg.key_learning_hours)
        scored = (
            scored.join(first_seen, on="accessKeyId", how="left")
            .with_columns((pl.col("start") & mature).alias("start"))
            .drop("_first")
        )
        inc = segment_incidents(scored, counts, keys=_KEY, config=cfg, data_end=ctx.data_end,
                                learning_end=ctx.learning_end, counters=counters)  # fmt: skip
        # Sustained runs only; an open run shorter than that has not fired yet.
        lasted = (pl.coalesce(pl.col("endTime"), pl.lit(ctx.data_end)) - pl.col("startTime")).dt.total_minutes()
        return inc.filter(lasted >= cfg.sustain_minutes) if sustained_only else inc

    def _first_use(
        self, events: pl.LazyFrame, keyed: pl.DataFrame, first_seen: pl.DataFrame, ctx: UnitContext
    ) -> pl.DataFrame:
        cfg = self.config
        novelty = timedelta(hours=cfg.novelty_hours)
        learned = ctx.data_start + timedelta(hours=cfg.first_use_learning_hours)
        new_keys = first_seen.filter(pl.col("_first") >= learned)
        if new_keys.is_empty():
            return empty_incidents()
        calls = keyed.join(new_keys, on="accessKeyId").filter(pl.col("eventTime") < pl.col("_first") + novelty)
        owners = calls.get_column("principalId").drop_nulls().unique()
        # Every call of the owners (any key) and of the account, with network keys.
        history = (
            events.filter(pl.col("eventTime") < ctx.data_end)
            .select("eventTime", "principalId", "sourceIpAddress")
            .collect()
        )
        nets = network_keys(pl.concat([calls.get_column("sourceIpAddress"), history.get_column("sourceIpAddress")]))
        # Only the history that can make a new key's network known: the owners' calls and the
        # calls from the same /24s or ASNs (a few addresses of the whole unit).
        call_nets = calls.lazy().join(nets, on="sourceIpAddress").select("_net", "_asn").collect()
        relevant = nets.filter(
            pl.col("_net").is_in(call_nets["_net"].drop_nulls().implode())
            | pl.col("_asn").is_in(call_nets["_asn"].drop_nulls().implode())
        )
        history = (
            history.lazy()
            .filter(pl.col("principalId").is_in(owners.implode())
                    | pl.col("sourceIpAddress").is_in(relevant.select("sourceIpAddress").collect().to_series().implode()))
            .join(nets, on="sourceIpAddress", how="inner")
            .collect()
            .lazy()
        )  # fmt: skip
        mine = history.filter(pl.col("principalId").is_in(owners.implode()))

        judged = _new_network_calls(calls, nets, history, mine, novelty)
        if judged.is_empty():
            return empty_incidents()
        # An owner's first first-use incident never feeds the history (as in the change
        # models): the attacker's second fresh key from the same network is new again.
        span = (
            judged.group_by("principalId")
            .agg(pl.col("accessKeyId").sort_by("eventTime").first().alias("_key"))
            .join(judged, left_on=["principalId", "_key"], right_on=["principalId", "accessKeyId"])
            .group_by("principalId")
            .agg((pl.col("_first").min() - novelty).alias("_from"),
                 (pl.col("eventTime").max() + timedelta(minutes=cfg.first_use_quiet_minutes)).alias("_to"))
        )  # fmt: skip
        inside = pl.col("eventTime").is_between(pl.col("_from"), pl.col("_to"))
        clean = history.join(span.lazy(), on="principalId", how="left").filter(~inside.fill_null(False)).drop(
            "_from", "_to"
        )
        judged = _new_network_calls(calls, nets, clean, clean.filter(pl.col("principalId").is_in(owners.implode())),
                                    novelty)  # fmt: skip
        quiet = timedelta(minutes=cfg.first_use_quiet_minutes)
        judged = judged.with_columns(pl.col("eventTime").dt.truncate("1m").alias("_minute")).sort(
            "accessKeyId", "eventTime"
        )
        gap = pl.col("_minute").diff().over("accessKeyId")
        judged = judged.with_columns((gap.is_null() | (gap >= quiet)).cum_sum().over("accessKeyId").alias("_run"))
        grouped = judged.group_by("accessKeyId", "_run", maintain_order=True).agg(
            pl.col("_minute").min().alias("startTime"),
            pl.col("_minute").max().alias("_last"),
            pl.len().alias("insightCount"),
            pl.col("_first").first(),
            pl.col("principalId").first().alias("_owner_id"),
        )
        closed = pl.col("_last") + quiet <= ctx.data_end
        duration = ((pl.col("_last") - pl.col("startTime")).dt.total_minutes() + 1).cast(pl.Int64)
        model = pl.struct(
            pl.lit("first use of a never-seen AccessKey from a network its owner does not use").alias("rule"),
            pl.lit(1.0).alias("score"),
            pl.col("_first").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("firstUse"),
            pl.col("_owner_id").alias("owner"),
        ).struct.json_encode()
        return conform_incidents(
            grouped.select(
                pl.lit(_TYPE).alias("insightType"),
                pl.col("accessKeyId").alias("insightObject"),
                pl.col("startTime"),
                pl.when(closed).then(pl.col("_last") + timedelta(minutes=1)).alias("endTime"),
                pl.lit(0.0).alias("baselineAverage"),
                ((pl.col("startTime") - pl.lit(ctx.data_start)).dt.total_minutes()).clip(lower_bound=0)
                .cast(pl.Int64).alias("baselineDuration"),
                pl.col("insightCount").cast(pl.Float64).alias("insightAverage"),
                duration.alias("insightDuration"),
                pl.col("insightCount").cast(pl.Int64),
                pl.col("startTime").alias("firedAt"),
                model.alias("model"),
            )
        )


def _new_network_calls(
    calls: pl.DataFrame, nets: pl.LazyFrame, history: pl.LazyFrame, mine: pl.LazyFrame, novelty: timedelta
) -> pl.DataFrame:
    """The new keys' calls from a network their owner (or, for an unknown owner, the account) does not use."""

    def known(column: str) -> pl.Expr:
        return pl.col(column).is_not_null() & (pl.col(column) <= pl.col("_first") - novelty)

    return (
        calls.lazy()
        .join(nets, on="sourceIpAddress", how="left")
        .join(first_seen(mine, ["principalId"], "_owner"), on="principalId", how="left")
        .join(first_seen(mine, ["principalId", "_net"], "_on"), on=["principalId", "_net"], how="left")
        .join(first_seen(mine, ["principalId", "_asn"], "_oa"), on=["principalId", "_asn"], how="left")
        .join(first_seen(history, ["_net"], "_an"), on="_net", how="left")
        .join(first_seen(history, ["_asn"], "_aa"), on="_asn", how="left")
        .with_columns(
            pl.when(known("_owner"))
            .then(~(known("_on") | known("_oa")))
            .otherwise(~(known("_an") | known("_aa")))
            .fill_null(False)
            .alias("_new_network")
        )
        .filter(pl.col("_new_network") & pl.col("_net").is_not_null())
        .collect()
    )
