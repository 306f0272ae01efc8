"""ApiErrorRateInsight: unusual per-minute error counts, at two levels.

* **API level**: errors (``errorCode`` not null, reads and writes) per (serviceName,
  eventSource, eventName), exposure = the API's calls; insightObject = eventName, errorCode =
  the dominant code when one code has ≥ ``dominant_share`` of the incident's errors.
* **Code level** (region-wide): errors per errorCode, exposure = all calls of the unit;
  insightObject = errorCode. Catches permission probing spread thinly over many APIs.
* **Caller level**: errors per caller (principalId, else accessKeyId), exposure = the
  caller's calls, count and share tests. A stolen key collecting three denials on each of
  four APIs is too thin for any one API (``min_count``), not for its caller. Each API on
  which an unusual caller collected at least ``caller_api_min_count`` errors becomes an
  API-level incident (ActionTrail's unit is the API), unless the API level already has one
  overlapping; its model says ``"test": "caller"`` and names the caller.

Expected errors are λ_err = max(λ, p_base · calls(t)), with p_base the series' error share
over the baseline window (Beta prior), so a burst of calls with the usual error share is
not an error-rate insight. A code-level incident that an API-level incident already
describes (same code, overlapping, the API has ≥ ``merge_share`` of the code's errors) is
dropped and counted in ``ctx.counters["merged"]``.

Examples
--------
>>> ErrorRateDetector().detect(unit_events, ctx)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import polars as pl

from insights_kit.detectors._reuse import reusable_rate_incidents
from insights_kit.detectors._rate import API_KEYS, ErrorRateConfig, select_events
from insights_kit.detectors.base import Detector, UnitContext, conform_incidents
from insights_kit.schema import UTC_DATETIME

__all__ = ["ErrorRateConfig", "ErrorRateDetector"]


class ErrorRateDetector(Detector):
    """Detect bursts of errors per API and per error code (ApiErrorRateInsight).

    Parameters
    ----------
    config : ErrorRateConfig, optional
        Model and incident parameters (defaults: :class:`ErrorRateConfig`).
    """

    insight_type: ClassVar[str] = "ApiErrorRateInsight"

    def __init__(self, config: ErrorRateConfig | None = None) -> None:
        super().__init__(config or ErrorRateConfig())

    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        """Return every ApiErrorRateInsight incident of the unit (INCIDENT_SCHEMA)."""
        cfg = self.config
        ev = select_events(events, cfg).filter(pl.col("eventTime") < ctx.data_end)
        # one scan of a slim projection; errors are few, so they are aggregated eagerly, while
        # calls stay raw and are rolled up only for the series still under test (exposure)
        slim = ev.select(*API_KEYS, "errorCode", pl.col("eventTime").dt.truncate("1m").alias("minute"),
                         *([CALLER] if cfg.caller_level else [])).collect()
        errors = slim.filter(pl.col("errorCode").is_not_null()).group_by(*API_KEYS, "errorCode", "minute").agg(
            pl.len().cast(pl.Int64).alias("count"))
        roll = lambda f, by: f.group_by(*by, "minute").agg(pl.col("count").sum())  # noqa: E731
        api_errors = roll(errors, API_KEYS)
        # rolled up once: every scale and pass of the multi-scale test reads the calls again
        api_calls = slim.group_by(*API_KEYS, "minute").agg(pl.len().cast(pl.Int64).alias("count")).lazy()
        common = dict(ctx=ctx, counters=ctx.counters, config=cfg)
        api = _or_empty(reusable_rate_incidents(api_errors, name="rate_api_errors", keys=API_KEYS, exposure=api_calls,
                                                exposure_keys=API_KEYS, **common), API_KEYS)
        callers = _caller_incidents(slim, common) if cfg.caller_level else None
        if callers is not None:
            api = _with_caller_incidents(api, *callers, api_errors, cfg)
        api = _with_dominant_code(api, errors, cfg.dominant_share).with_columns(pl.col("eventName").alias("insightObject"))
        out = [api]
        if cfg.code_level:
            code_errors = roll(errors, ["errorCode"])
            unit_calls = slim.group_by("minute").agg(pl.len().cast(pl.Int64).alias("count")).lazy()
            # The share of one code among all of the region's calls moves with whatever else is
            # called (a quiet night halves the denominator): the code level keeps the count test.
            # It is the extra level, so it skips the baseline-masking passes (a third of the
            # detector's time): its incidents still end, they may end earlier.
            code_common = {**common, "config": dataclasses.replace(cfg, share_test=False, accept_after_hours=0.0)}
            code = _or_empty(reusable_rate_incidents(code_errors, name="rate_error_codes", keys=["errorCode"],
                                                     exposure=unit_calls, exposure_keys=[], **code_common),
                             ["errorCode"])
            kept = _drop_described(code, api, errors, cfg.merge_share)
            ctx.counters["merged"] = ctx.counters.get("merged", 0) + code.height - kept.height
            if callers is not None:
                kept = _with_caller_code_incidents(kept, api, *callers, code_errors, cfg)
            out.append(kept.with_columns(pl.col("errorCode").alias("insightObject")))
        inc = pl.concat([conform_incidents(f.with_columns(pl.lit(self.insight_type).alias("insightType")))
                         for f in out])
        return inc.sort("startTime", "insightObject", "serviceName", "eventSource", "errorCode", nulls_last=True)


CALLER = pl.coalesce(pl.col("principalId"), pl.col("accessKeyId")).alias("_caller")


def _caller_incidents(slim: pl.DataFrame, common: dict) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The caller-level incidents and the callers' errors (API keys, errorCode, minute, ``_caller``).

    ``slim`` is the detector's one scan of the unit (API keys, errorCode, minute, ``_caller``).
    None when no caller's errors are unusual.
    """
    slim = slim.filter(pl.col("_caller").is_not_null())
    caller_errors = slim.filter(pl.col("errorCode").is_not_null())
    if caller_errors.is_empty():
        return None
    errors = caller_errors.group_by("_caller", "minute").agg(pl.len().cast(pl.Int64).alias("count"))
    calls = (slim.join(caller_errors.select("_caller").unique(), on="_caller", how="semi")
             .group_by("_caller", "minute").agg(pl.len().cast(pl.Int64).alias("count")).lazy())
    callers = reusable_rate_incidents(errors, name="rate_callers", keys=["_caller"], exposure=calls,
                                      exposure_keys=["_caller"], **common)
    return None if callers.is_empty() else (callers, caller_errors)


def _errors_in_caller_incidents(callers: pl.DataFrame, caller_errors: pl.DataFrame) -> pl.LazyFrame:
    """Each caller incident's errors (API keys, errorCode, minute) with the incident's columns."""
    spans = callers.lazy().select(pl.col("_run").alias("_caller_run"), "_caller", "startTime", "_stop", "endTime",
                                  "firedAt", "baselineDuration", "model", "endReason")
    return (spans.join(caller_errors.lazy().select("_caller", *API_KEYS, "errorCode", "minute"), on="_caller")
            .filter((pl.col("minute") >= pl.col("startTime")) & (pl.col("minute") < pl.col("_stop"))))


def _with_caller_incidents(api: pl.DataFrame, callers: pl.DataFrame, caller_errors: pl.DataFrame,
                           api_errors: pl.DataFrame, cfg: ErrorRateConfig) -> pl.DataFrame:
    """``api`` plus an API-level incident for each API an unusual caller collected errors on."""
    per_api = (
        _errors_in_caller_incidents(callers, caller_errors)
        .group_by("_caller_run", *API_KEYS, maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("insightCount"), pl.col("minute").min().alias("_first"),
             pl.col("minute").max().alias("_last"), pl.all().exclude("minute", "errorCode").first())
        .filter(pl.col("insightCount") >= cfg.caller_api_min_count)
        .collect()
    )
    if per_api.is_empty():
        return api
    if api.height:  # the API level already tells it
        told = (per_api.lazy().select("_caller_run", *API_KEYS, "startTime", "_stop")
                .join(api.lazy().select(*API_KEYS, pl.col("startTime").alias("_a0"), pl.col("_stop").alias("_a1")),
                      on=API_KEYS, how="inner", nulls_equal=True)
                .filter((pl.col("_a0") < pl.col("_stop")) & (pl.col("startTime") < pl.col("_a1")))
                .select("_caller_run", *API_KEYS).collect())
        per_api = per_api.join(told, on=["_caller_run", *API_KEYS], how="anti", nulls_equal=True)
    return _derived_incidents(per_api, api, api_errors, API_KEYS, "apiErrors")


def _derived_incidents(per: pl.DataFrame, into: pl.DataFrame, series_errors: pl.DataFrame, keys: list[str],
                       model_key: str) -> pl.DataFrame:
    """``into`` plus each row of ``per`` (a caller incident's errors on one series) as an incident.

    Each spans the series' own errors inside its caller's incident, from ``_first`` to ``_last``
    (a probe moves from API to API, so each insight ends with its own last error); its model is
    the caller's, with the caller and its errors on the series under ``model_key``; its
    baseline is the series' own errors.
    """
    start = pl.max_horizontal("startTime", "_first")
    stop = pl.min_horizontal("_stop", pl.col("_last") + pl.duration(minutes=1))
    derived = per.with_columns(
        start.alias("startTime"), stop.alias("_stop"), pl.when(pl.col("endTime").is_not_null()).then(stop).alias("endTime"),
        pl.max_horizontal("firedAt", "_first").alias("firedAt"),
    ).with_columns(
        ((pl.col("_stop") - pl.col("startTime")).dt.total_minutes()).clip(lower_bound=1).alias("insightDuration"),
    ).with_columns(
        (pl.col("insightCount") / pl.col("insightDuration")).alias("insightAverage"),
        pl.lit(None, pl.Float64).alias("startAverage"),
        pl.struct("model", "_caller", "insightCount").map_elements(
            lambda r: _caller_model(r["model"], r["_caller"], r["insightCount"], model_key),
            return_dtype=pl.String).alias("model"),
    ).drop("_first", "_last", "_all", "_told", "_caller_run", "_caller", strict=False)
    derived = _series_baseline(derived, series_errors, keys=keys)
    offset = int(into["_run"].max()) + 1 if into.height else 0
    derived = derived.with_row_index("_run", offset=offset)
    return pl.concat([into, derived], how="diagonal_relaxed") if into.height else derived


def _series_baseline(derived: pl.DataFrame, series_errors: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``baselineAverage``: the series' errors per minute over the caller incident's baseline window."""
    window = (
        derived.lazy().with_row_index("_i").select("_i", *keys, "startTime", "baselineDuration")
        .join(series_errors.lazy(), on=keys, how="inner", nulls_equal=True)
        .filter((pl.col("minute") < pl.col("startTime"))
                & (pl.col("minute") >= pl.col("startTime") - pl.duration(minutes=pl.col("baselineDuration"))))
        .group_by("_i").agg(pl.col("count").sum().alias("_base"))
        .collect()
    )
    return (derived.with_row_index("_i").join(window, on="_i", how="left")
            .with_columns((pl.col("_base").fill_null(0) / pl.col("baselineDuration").clip(lower_bound=1))
                          .alias("baselineAverage"))
            .drop("_i", "_base"))


def _caller_model(caller_model: str, caller: str, errors: int, key: str) -> str:
    """The derived incident's model: the caller's test, with the caller and its errors on the API."""
    model = json.loads(caller_model)
    return json.dumps({**model, "test": "caller", "callerTest": model.get("test"), "caller": caller,
                       key: int(errors)}, sort_keys=True)


def _with_caller_code_incidents(code: pl.DataFrame, api: pl.DataFrame, callers: pl.DataFrame,
                                caller_errors: pl.DataFrame, code_errors: pl.DataFrame,
                                cfg: ErrorRateConfig) -> pl.DataFrame:
    """``code`` plus a code-level incident for each unusual caller whose errors no API tells.

    A stolen key trying 40 APIs once each is unusual as a caller, but no API holds
    ``caller_api_min_count`` of its denials: the region-wide error-code insight tells it. Kept
    when one code has ``dominant_share`` of the caller's errors in its incident and at least
    ``min_count`` of them, less than ``merge_share`` of those fall on APIs with an overlapping
    API-level incident, and no code-level incident of that code overlaps.
    """
    within = _errors_in_caller_incidents(callers, caller_errors)
    if api.height:  # errors on an API whose own incident covers the minute are already told
        told = (within.join(api.lazy().select(*API_KEYS, pl.col("startTime").alias("_a0"), pl.col("_stop").alias("_a1")),
                            on=API_KEYS, how="inner", nulls_equal=True)
                .filter((pl.col("minute") >= pl.col("_a0")) & (pl.col("minute") < pl.col("_a1")))
                .group_by("_caller_run", "errorCode").agg(pl.len().alias("_told")))
    else:
        told = pl.LazyFrame(schema={"_caller_run": pl.UInt32, "errorCode": pl.String, "_told": pl.UInt32})
    per_code = (
        within.with_columns(pl.len().over("_caller_run").alias("_all"))
        .group_by("_caller_run", "errorCode", maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("insightCount"), pl.col("minute").min().alias("_first"),
             pl.col("minute").max().alias("_last"), pl.all().exclude("minute", *API_KEYS).first())
        .join(told, on=["_caller_run", "errorCode"], how="left")
        .filter((pl.col("insightCount") >= cfg.dominant_share * pl.col("_all"))
                & (pl.col("insightCount") >= cfg.min_count)
                & (pl.col("_told").fill_null(0) < cfg.merge_share * pl.col("insightCount")))
        .collect()
    )
    if per_code.is_empty():
        return code
    if code.height:  # the code level already tells it
        overlap = (per_code.lazy().select("_caller_run", "errorCode", "_first", "_last")
                   .join(code.lazy().select("errorCode", pl.col("startTime").alias("_c0"), pl.col("_stop").alias("_c1")),
                         on="errorCode")
                   .filter((pl.col("_c0") <= pl.col("_last")) & (pl.col("_first") < pl.col("_c1")))
                   .select("_caller_run", "errorCode").collect())
        per_code = per_code.join(overlap, on=["_caller_run", "errorCode"], how="anti")
    if per_code.is_empty():
        return code
    return _derived_incidents(per_code, code, code_errors, ["errorCode"], "codeErrors")


def _or_empty(inc: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """An empty result with the columns the merging steps read."""
    if inc.height:
        return inc
    schema = {**{k: pl.String for k in keys}, "_run": pl.UInt32, "startTime": UTC_DATETIME, "_stop": UTC_DATETIME,
              "insightCount": pl.Int64}
    return pl.DataFrame(schema=schema)


def _with_dominant_code(inc: pl.DataFrame, errors: pl.DataFrame, share: float) -> pl.DataFrame:
    """Set ``errorCode`` to the code holding ≥ ``share`` of each incident's errors (else null)."""
    if inc.height == 0:
        return inc.with_columns(pl.lit(None, pl.String).alias("errorCode"))
    by_code = (
        inc.lazy().select("_run", *API_KEYS, "startTime", "_stop")
        .join(errors.lazy(), on=API_KEYS, how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("startTime")) & (pl.col("minute") < pl.col("_stop")))
        .group_by("_run", "errorCode").agg(pl.col("count").sum())
        .with_columns((pl.col("count") / pl.col("count").sum().over("_run")).alias("_share"))
        .filter(pl.col("_share") >= share)
        .select("_run", "errorCode")
        .collect()
    )
    return inc.join(by_code, on="_run", how="left")


def _drop_described(code: pl.DataFrame, api: pl.DataFrame, errors: pl.DataFrame, share: float) -> pl.DataFrame:
    """Code-level incidents not already told by an overlapping API-level incident of the same code."""
    if code.height == 0 or api.height == 0:
        return code
    pairs = (
        code.lazy().select("_run", "errorCode", "startTime", "_stop", "insightCount")
        .join(api.lazy().filter(pl.col("errorCode").is_not_null())
              .select(*[pl.col(k).alias(f"_a_{k}") for k in API_KEYS], "errorCode", pl.col("startTime").alias("_a0"), pl.col("_stop").alias("_a1")),
              on="errorCode", how="inner")
        .filter((pl.col("_a0") < pl.col("_stop")) & (pl.col("startTime") < pl.col("_a1")))
    )
    described = (
        pairs.join(errors.lazy().rename({k: f"_a_{k}" for k in API_KEYS}),
                   on=[*[f"_a_{k}" for k in API_KEYS], "errorCode"], how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("startTime")) & (pl.col("minute") < pl.col("_stop")))
        .group_by("_run", *[f"_a_{k}" for k in API_KEYS], "insightCount").agg(pl.col("count").sum().alias("_api"))
        .filter(pl.col("_api") >= share * pl.col("insightCount"))
        .select("_run").unique()
        .collect()
    )
    return code.join(described, on="_run", how="anti")
