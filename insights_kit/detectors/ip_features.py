"""Tables and heterogeneity dimensions behind IpInsight (see :mod:`insights_kit.detectors.ip`).

Everything is a Polars frame keyed by an *evaluation context* ``ctxKey`` (Int64):

* for ordinary days ``ctxKey`` is the day's number since 1970-01-01 and the context's
  history is the ``history_days`` whole UTC days before it;
* for a withheld learning-period candidate ``ctxKey`` is negative and its history is
  the learning window's activity of every *other* address (leave-one-out).

A dimension function therefore never knows which mode it serves: it joins candidate rows to
history rows on ``ctxKey``. Event rows are never looped over in Python.

Tables
------
minute rows
    one row per (address, minute, principal, userAgent): ``calls``, ``errors``,
    ``sensSum``/``sensMax`` (API sensitivity, :func:`sensitivity_expr`).
activity
    one row per (day, address, principal, userAgent): ``calls``, ``errors``.
hours
    one row per (day, hour): the unit's address-sourced ``calls`` in that clock hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import polars as pl

from insights_kit.schema import UTC_DATETIME

#: Dimension names, in the order of the model JSON and of the IsolationForest features.
DIMENSIONS: tuple[str, ...] = (
    "network",
    "asn",
    "country",
    "userAgent",
    "principal",
    "sensitiveApis",
    "errorShare",
    "timeOfDay",
)

FREQUENT, INFREQUENT, RARE, UNSEEN = "FREQUENT", "INFREQUENT", "RARE", "UNSEEN"
#: Score of each categorical verdict (network, asn, country, userAgent, principal levels).
VERDICT_SCORE: dict[str, float] = {FREQUENT: 0.0, INFREQUENT: 0.3, RARE: 0.7, UNSEEN: 1.0}
#: Neutral score for an ASN/country the offline database does not know.
NEUTRAL_SCORE = 0.5

#: Default sensitive-API patterns (regular expressions on ``eventName``, case-sensitive
#: CamelCase so ``Stop*`` does not match ``DescribeStops``). ``sensitiveAction`` = true
#: in the event always counts as sensitive too.
DEFAULT_SENSITIVE_PATTERNS: tuple[str, ...] = (
    "^Delete",
    "^Stop",
    "^Terminate",
    "^Disable",
    "^Attach",
    "^Detach",
    "Policy",
    "AccessKey",
    "Trail",
    "Password",
    "LoginProfile",
    "MFA|Mfa",
    "^CreateUser$",
    "^StopLogging$",
)
#: Event names read as reads when ``eventRW`` is null.
READ_PREFIXES = r"^(Get|List|Describe|Head|Lookup|Query|Search|Check|Batch Get|Select)"

DAY_US = 86_400_000_000


def day_number(column: str) -> pl.Expr:
    """Whole days since 1970-01-01 of a UTC datetime column (the ordinary ``ctxKey``)."""
    return (pl.col(column).dt.truncate("1d").dt.epoch("d")).cast(pl.Int64)


def day_start(number: int) -> datetime:
    """Inverse of :func:`day_number` for one value."""
    return datetime.fromtimestamp(number * 86_400, tz=timezone.utc)


def ua_family_expr(column: str = "userAgent") -> pl.Expr:
    """The product token of a user agent, lower case: ``aws-cli/2.2.23 Python/3.8`` -> ``aws-cli``.

    A version upgrade keeps the family, so it reads as INFREQUENT rather than UNSEEN.
    """
    return pl.col(column).str.extract(r"^\s*([^/\s(;:]+)", 1).str.to_lowercase().fill_null("<none>")


def sensitivity_expr(
    patterns: Sequence[str], *, sensitive_write: float, sensitive_read: float, plain_write: float
) -> pl.Expr:
    """Per-event sensitivity in [0, 1]: writes count more than reads.

    ``sensitive_write`` for a sensitive write, ``sensitive_read`` for a sensitive read,
    ``plain_write`` for any other write, 0 for any other read.
    """
    regex = "|".join(f"(?:{p})" for p in patterns) if patterns else "$^"
    sensitive = pl.col("sensitiveAction").fill_null(False) | pl.col("eventName").fill_null("").str.contains(regex)
    is_write = (
        pl.when(pl.col("eventRW").is_not_null())
        .then(pl.col("eventRW").str.to_lowercase() == "write")
        .otherwise(~pl.col("eventName").fill_null("").str.contains(READ_PREFIXES))
    )
    return (
        pl.when(sensitive & is_write)
        .then(sensitive_write)
        .when(sensitive)
        .then(sensitive_read)
        .when(is_write)
        .then(plain_write)
        .otherwise(0.0)
        .cast(pl.Float64)
    )


def _fixed_order_sum(name: str) -> pl.Expr:
    """A float column's sum, added up exactly: in millionths, as integers.

    A group_by adds a group's rows in whatever order and chunks the engine's threads met
    them, and float addition is not associative: the same rows gave sums differing in the last
    bit from run to run (sorting the values first did not help: the kernel adds per chunk).
    Integer addition is exact, so the same values always give the same sum. Sensitivities are
    in [0, 1]; a millionth is below every precision the model reports.
    """
    return (pl.col(name) * 1_000_000).round().cast(pl.Int64).sum() / 1_000_000


def _sum(name: str) -> pl.Expr:
    # sensSum is already a sum of millionths: exact again; the others are integers
    return _fixed_order_sum(name) if name == "sensSum" else pl.col(name).sum()


def minute_rows(events: pl.LazyFrame, sensitivity: pl.Expr, data_end: datetime) -> pl.LazyFrame:
    """Address-sourced events -> one row per (address, minute, principal, userAgent).

    Sensitivity is computed once per distinct (eventName, eventRW, sensitiveAction), not per event.
    """
    calls = events.filter(pl.col("sourceIsIp").fill_null(False) & (pl.col("eventTime") < data_end))
    api_keys = ["eventName", "eventRW", "sensitiveAction"]
    apis = calls.select(api_keys).unique().with_columns(sensitivity.alias("sens"))
    return (
        calls.select(
            pl.col("sourceIpAddress").alias("address"),
            pl.col("eventTime").dt.truncate("1m").alias("minute"),
            pl.coalesce("principalId", "userIdentityArn", "userName", pl.lit("<unknown>")).alias("principal"),
            pl.col("userAgent").fill_null("<none>"),
            (pl.col("errorCode").fill_null("") != "").alias("isError"),
            *api_keys,
        )
        .join(apis, on=api_keys, how="left", nulls_equal=True)
        .group_by("address", "minute", "principal", "userAgent")
        .agg(
            pl.len().cast(pl.Int64).alias("calls"),
            pl.col("isError").sum().cast(pl.Int64).alias("errors"),
            _fixed_order_sum("sens").alias("sensSum"),
            pl.col("sens").max().alias("sensMax"),
        )
    )


MINUTE_SCHEMA: dict[str, pl.DataType] = {
    "address": pl.String(),
    "minute": UTC_DATETIME,
    "principal": pl.String(),
    "userAgent": pl.String(),
    "calls": pl.Int64(),
    "errors": pl.Int64(),
    "sensSum": pl.Float64(),
    "sensMax": pl.Float64(),
}
ACTIVITY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Int64(),
    "address": pl.String(),
    "principal": pl.String(),
    "userAgent": pl.String(),
    "calls": pl.Int64(),
    "errors": pl.Int64(),
}
HOURS_SCHEMA: dict[str, pl.DataType] = {"day": pl.Int64(), "hour": pl.Int8(), "calls": pl.Int64()}


def activity_from_minutes(minutes: pl.LazyFrame) -> pl.LazyFrame:
    """Minute rows -> activity rows (day, address, principal, userAgent)."""
    return (
        minutes.with_columns(day_number("minute").alias("day"))
        .group_by("day", "address", "principal", "userAgent")
        .agg(pl.col("calls").sum(), pl.col("errors").sum())
    )


def hours_from_minutes(minutes: pl.LazyFrame, by: Sequence[str] = ()) -> pl.LazyFrame:
    """Minute rows -> hours rows (day, hour[, by...]) with the calls of that clock hour."""
    return (
        minutes.with_columns(day_number("minute").alias("day"), pl.col("minute").dt.hour().cast(pl.Int8).alias("hour"))
        .group_by(*by, "day", "hour")
        .agg(pl.col("calls").sum())
    )


def expand_to_days(frame: pl.LazyFrame, target_days: Sequence[int], history_days: int) -> pl.LazyFrame:
    """Give each history row the ``ctxKey`` of every target day whose window holds it.

    A row of day ``d`` serves targets ``d+1 … d+history_days``; only ``target_days`` are kept.
    """
    targets = pl.LazyFrame({"ctxKey": sorted(set(target_days))}, schema={"ctxKey": pl.Int64})
    return (
        frame.with_columns((pl.col("day") + pl.int_ranges(1, history_days + 1, dtype=pl.Int64)).alias("ctxKey"))
        .explode("ctxKey")
        .join(targets, on="ctxKey", how="semi")
    )


def _exists(frame: pl.LazyFrame, keys: list[str], name: str) -> pl.LazyFrame:
    return frame.select(keys).unique().with_columns(pl.lit(True).alias(name))


def _level(conditions: Sequence[tuple[pl.Expr, str]], otherwise: str) -> pl.Expr:
    """First matching condition's verdict score."""
    expr = None
    for cond, verdict in conditions:
        expr = (pl.when(cond) if expr is None else expr.when(cond)).then(VERDICT_SCORE[verdict])
    return expr.otherwise(VERDICT_SCORE[otherwise])


def _share_score(days: pl.Expr, total: pl.Expr, frequent: float, infrequent: float) -> pl.Expr:
    share = days.fill_null(0) / total
    return (
        pl.when(share >= frequent)
        .then(VERDICT_SCORE[FREQUENT])
        .when(share >= infrequent)
        .then(VERDICT_SCORE[INFREQUENT])
        .when(share > 0)
        .then(VERDICT_SCORE[RARE])
        .otherwise(VERDICT_SCORE[UNSEEN])
    )


def address_keys(ip_facts: pl.DataFrame) -> pl.LazyFrame:
    """ipintel facts -> the keys the dimensions compare.

    Private addresses share one pseudo ASN/country ``private`` (an internal network the unit
    uses daily is familiar); reserved addresses and public ones the database misses get a
    null key, which scores neutral.
    """
    private = pl.col("addressClass") == "private"
    return ip_facts.lazy().select(
        "address",
        "narrowPrefix",
        "widePrefix",
        private.alias("isPrivate"),
        pl.when(private).then(pl.lit("private")).otherwise(pl.col("asn")).alias("asnKey"),
        pl.when(private).then(pl.lit("private")).otherwise(pl.col("country")).alias("countryKey"),
    )


def score_dimensions(
    candidates: pl.LazyFrame,
    history: pl.LazyFrame,
    history_hours: pl.LazyFrame,
    keys: pl.LazyFrame,
    *,
    cumulative: bool,
    frequent_share: float,
    infrequent_share: float,
    quiet_hour_share: float,
    error_pseudo_calls: float,
) -> pl.LazyFrame:
    """Score every dimension of each candidate against its context's history.

    Parameters
    ----------
    candidates
        Minute rows plus ``ctxKey`` (the rows to judge).
    history
        Activity rows plus ``ctxKey`` (what each context knows).
    history_hours
        Hours rows plus ``ctxKey``.
    keys
        :func:`address_keys` for every address in ``candidates`` and ``history``.
    cumulative
        True: one row per (ctxKey, address, minute) with the running totals of that day
        (causal scoring). False: one row per (ctxKey, address) with the whole day's totals
        (the IsolationForest training profiles).

    Returns
    -------
    pl.LazyFrame
        ``ctxKey``, ``address``, (``minute``,) ``calls``, ``errors``, ``sensitiveCalls``,
        ``p0`` (the context's usual error share), the facts behind each detail, and one Float64
        column per name in :data:`DIMENSIONS`.

    Examples
    --------
    >>> # see tests/test_ip_detector.py for complete frames           # doctest: +SKIP
    """
    # materialised once: a dozen lookups below read it (the plan would otherwise repeat it)
    hist = history.join(keys, on="address", how="left").with_columns(ua_family_expr().alias("uaFamily")).collect().lazy()
    history_hours = history_hours.collect().lazy()
    candidates = candidates.collect().lazy()
    ctx_totals = hist.group_by("ctxKey").agg(
        pl.col("day").n_unique().alias("histDays"),
        pl.col("calls").sum().alias("histCalls"),
        pl.col("errors").sum().alias("histErrors"),
    )
    hour_days = (
        history_hours.filter(pl.col("calls") > 0).group_by("ctxKey", "hour").agg(pl.col("day").n_unique().alias("hourDays"))
    )
    asn_days = hist.drop_nulls("asnKey").group_by("ctxKey", "asnKey").agg(pl.col("day").n_unique().alias("asnDays"))
    country_days = (
        hist.drop_nulls("countryKey").group_by("ctxKey", "countryKey").agg(pl.col("day").n_unique().alias("countryDays"))
    )

    # --- per (ctxKey, address): network, asn, country -------------------------------------
    addresses = (
        candidates.select("ctxKey", "address")
        .unique()
        .join(keys, on="address", how="left")
        .join(ctx_totals, on="ctxKey", how="left")
        .join(_exists(hist, ["ctxKey", "address"], "seenAddress"), on=["ctxKey", "address"], how="left")
        .join(_exists(hist, ["ctxKey", "narrowPrefix"], "seenNarrow"), on=["ctxKey", "narrowPrefix"], how="left")
        .join(_exists(hist, ["ctxKey", "widePrefix"], "seenWide"), on=["ctxKey", "widePrefix"], how="left")
        .join(asn_days, on=["ctxKey", "asnKey"], how="left")
        .join(country_days, on=["ctxKey", "countryKey"], how="left")
        .with_columns(pl.col("histDays", "histCalls", "histErrors").fill_null(0))
        .with_columns(
            _level(
                [
                    (pl.col("seenAddress").fill_null(False), FREQUENT),
                    (pl.col("seenNarrow").fill_null(False), INFREQUENT),
                    # a known private /16 is the same internal network (VPC, office LAN)
                    (pl.col("seenWide").fill_null(False) & pl.col("isPrivate").fill_null(False), INFREQUENT),
                    (pl.col("seenWide").fill_null(False), RARE),
                ],
                UNSEEN,
            ).alias("network"),
            *[
                pl.when(pl.col(key).is_null())
                .then(NEUTRAL_SCORE)
                .when(pl.col("histDays") == 0)
                .then(VERDICT_SCORE[UNSEEN])
                .otherwise(_share_score(pl.col(days), pl.col("histDays"), frequent_share, infrequent_share))
                .alias(name)
                for name, key, days in (("asn", "asnKey", "asnDays"), ("country", "countryKey", "countryDays"))
            ],
            pl.when(pl.col("histCalls") > 0)
            .then(pl.col("histErrors") / pl.col("histCalls"))
            .otherwise(0.0)
            .alias("p0"),
        )
    )

    # --- per (ctxKey, address, principal, userAgent): userAgent and principal levels -----
    pair_keys = ["ctxKey", "address", "principal", "userAgent"]
    combos = (
        candidates.select(pair_keys)
        .unique()
        .join(keys.select("address", "narrowPrefix", "widePrefix", "asnKey"), on="address", how="left")
        .with_columns(ua_family_expr().alias("uaFamily"))
        .join(_exists(hist, ["ctxKey", "principal", "userAgent"], "seenPair"), on=["ctxKey", "principal", "userAgent"], how="left")
        .join(_exists(hist, ["ctxKey", "principal", "uaFamily"], "seenPrincipalFamily"), on=["ctxKey", "principal", "uaFamily"], how="left")
        .join(_exists(hist, ["ctxKey", "uaFamily"], "seenFamily"), on=["ctxKey", "uaFamily"], how="left")
        .join(_exists(hist, ["ctxKey", "principal"], "seenPrincipal"), on=["ctxKey", "principal"], how="left")
        .join(
            _exists(hist, ["ctxKey", "principal", "narrowPrefix"], "seenPrincipalNarrow"),
            on=["ctxKey", "principal", "narrowPrefix"],
            how="left",
        )
        .join(
            _exists(hist, ["ctxKey", "principal", "widePrefix"], "seenPrincipalWide"),
            on=["ctxKey", "principal", "widePrefix"],
            how="left",
        )
        .join(
            _exists(hist.drop_nulls("asnKey"), ["ctxKey", "principal", "asnKey"], "seenPrincipalAsn"),
            on=["ctxKey", "principal", "asnKey"],
            how="left",
        )
        .with_columns(pl.col("^seen.*$").fill_null(False))
        .select(
            *pair_keys,
            _level(
                [(pl.col("seenPair"), FREQUENT), (pl.col("seenPrincipalFamily"), INFREQUENT), (pl.col("seenFamily"), RARE)],
                UNSEEN,
            ).alias("uaLevel"),
            _level(
                [
                    (~pl.col("seenPrincipal"), UNSEEN),
                    (pl.col("seenPrincipalNarrow"), FREQUENT),
                    (pl.col("seenPrincipalWide") | pl.col("seenPrincipalAsn"), INFREQUENT),
                ],
                RARE,
            ).alias("principalLevel"),
        )
    )

    # --- per minute row: quietness of its clock hour -------------------------------------
    rows = (
        candidates.with_columns(pl.col("minute").dt.hour().cast(pl.Int8).alias("hour"))
        .join(combos, on=pair_keys, how="left")
        .join(hour_days, on=["ctxKey", "hour"], how="left")
        .join(ctx_totals.select("ctxKey", "histDays"), on="ctxKey", how="left")
        .with_columns(
            # an hour active on >= quiet_hour_share of the history's days is not quiet at all
            pl.when(pl.col("histDays").fill_null(0) == 0)
            .then(NEUTRAL_SCORE)
            .otherwise(1.0 - (pl.col("hourDays").fill_null(0) / pl.col("histDays") / quiet_hour_share).clip(0.0, 1.0))
            .alias("quiet")
        )
        .with_columns(
            (pl.col("quiet") * pl.col("calls")).alias("quietCalls"),
            (pl.col("sensMax") > 0).cast(pl.Int64).mul(pl.col("calls")).alias("sensitiveCalls"),
            pl.when(pl.col("uaLevel") > 0).then(pl.col("calls")).otherwise(0).alias("uaNewCalls"),
            pl.when(pl.col("principalLevel") > 0).then(pl.col("calls")).otherwise(0).alias("principalNewCalls"),
        )
    )
    sums = ["calls", "errors", "sensSum", "quietCalls", "sensitiveCalls", "uaNewCalls", "principalNewCalls"]
    maxes = ["sensMax", "uaLevel", "principalLevel"]
    if cumulative:
        per_minute = (
            rows.group_by("ctxKey", "address", "minute")
            .agg(*[_sum(c) for c in sums], *[pl.col(c).max() for c in maxes])
            .sort("ctxKey", "address", "minute")
        )
        totals = per_minute.with_columns(
            *[pl.col(c).cum_sum().over("ctxKey", "address") for c in sums],
            *[pl.col(c).cum_max().over("ctxKey", "address") for c in maxes],
        )
    else:
        totals = rows.group_by("ctxKey", "address").agg(*[_sum(c) for c in sums], *[pl.col(c).max() for c in maxes])

    k = error_pseudo_calls
    return totals.join(addresses, on=["ctxKey", "address"], how="left").with_columns(
        pl.col("uaLevel").alias("userAgent"),
        pl.col("principalLevel").alias("principal"),
        (0.5 * pl.col("sensMax") + 0.5 * pl.col("sensSum") / pl.col("calls")).clip(0.0, 1.0).alias("sensitiveApis"),
        # shrink towards the usual share so one failed call is not "100 % errors"
        (
            ((pl.col("errors") + k * pl.col("p0")) / (pl.col("calls") + k) - pl.col("p0"))
            / (1.0 - pl.col("p0")).clip(1e-9, None)
        )
        .clip(0.0, 1.0)
        .alias("errorShare"),
        (pl.col("quietCalls") / pl.col("calls")).clip(0.0, 1.0).alias("timeOfDay"),
    ).with_columns(pl.col(list(DIMENSIONS)).cast(pl.Float64))


def band_verdict(score: float) -> str:
    """Verdict of a continuous dimension (sensitiveApis, errorShare, timeOfDay) from its score.

    [0, 0.15) FREQUENT, [0.15, 0.5) INFREQUENT, [0.5, 0.85) RARE, [0.85, 1] UNSEEN: the bands
    are centred on the categorical scores 0, 0.3, 0.7, 1.
    """
    if score < 0.15:
        return FREQUENT
    if score < 0.5:
        return INFREQUENT
    if score < 0.85:
        return RARE
    return UNSEEN


def level_verdict(score: float) -> str:
    """Verdict of a categorical dimension from its score (the inverse of VERDICT_SCORE)."""
    if score == NEUTRAL_SCORE:
        return INFREQUENT
    return min(VERDICT_SCORE, key=lambda v: abs(VERDICT_SCORE[v] - score))


def explain(row: dict) -> list[dict]:
    """The ``dimensions`` list of the model JSON for one scored row (a dict of its columns)."""
    calls = int(row["calls"])
    net = row["network"]
    network_detail = {
        0.0: "address active in the history window",
        0.3: f"new address; {'same internal network ' + str(row['widePrefix']) if row['seenWide'] and not row['seenNarrow'] else 'same ' + str(row['narrowPrefix']) + ' as a known address'}",
        0.7: f"new address; same {row['widePrefix']} as a known address",
        1.0: f"no known address in {row['widePrefix']}",
    }[net]

    def days_detail(kind: str, key: str, days: str) -> str:
        if row[key] is None:
            return f"{kind} unknown for this address (reserved, or not in the offline database): neutral"
        return f"{kind} {row[key]} active on {int(row[days] or 0)} of {int(row['histDays'])} history days"

    ua_detail = {
        0.0: "user agent already used by the principal(s)",
        0.3: "new version of a user-agent family the principal already used",
        0.7: "user agent known in the unit but new for the principal",
        1.0: "user-agent family never seen in the unit",
    }[row["userAgent"]]
    principal_detail = {
        0.0: "principal(s) already used this network",
        0.3: "principal(s) known, new in this network but seen in its /16 or ASN",
        0.7: "principal(s) known but never from this /16 or ASN",
        1.0: "principal never seen in the unit",
    }[row["principal"]]
    details = {
        "network": (level_verdict(net), network_detail),
        "asn": (level_verdict(row["asn"]), days_detail("ASN", "asnKey", "asnDays")),
        "country": (level_verdict(row["country"]), days_detail("country", "countryKey", "countryDays")),
        "userAgent": (level_verdict(row["userAgent"]), f"{ua_detail} ({int(row['uaNewCalls'])}/{calls} calls new)"),
        "principal": (level_verdict(row["principal"]), f"{principal_detail} ({int(row['principalNewCalls'])}/{calls} calls)"),
        "sensitiveApis": (
            band_verdict(row["sensitiveApis"]),
            f"{int(row['sensitiveCalls'])}/{calls} calls to sensitive or write APIs",
        ),
        "errorShare": (
            band_verdict(row["errorShare"]),
            f"{int(row['errors'])}/{calls} calls failed; usual error share {row['p0']:.1%}",
        ),
        "timeOfDay": (
            band_verdict(row["timeOfDay"]),
            f"{row['timeOfDay']:.0%} of calls in hours when the unit is usually quiet",
        ),
    }
    return [
        {"name": name, "verdict": details[name][0], "score": row[name], "detail": details[name][1]} for name in DIMENSIONS
    ]
