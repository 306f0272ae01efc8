"""Evaluate detected Insights against the simulator's labels.

``labels.json`` (written by ``insights_kit.simulate``) lists every planted incident::

    {"seed", "days", "scale", "start", "end", "account", "regions", "home_region",
     "incidents": [{"id", "scenario", "expect": "insight"|"none"|"may", "type", "region", "object",
                    "start", "end", "note"}]}

``expect: "insight"`` marks a real incident the detectors should report; ``expect: "none"`` a
benign look-alike (a deploy burst, a new CI address, ...) they should stay quiet about;
``expect: "may"`` a second, weaker trace of a real incident that a type may report or not
(the AkInsight of a stolen key whose teardown lasted five minutes): a Start there is true,
a miss is not counted in recall. Times are
``YYYY-MM-DDThh:mm:ssZ``; ``tol`` below is ``tolerance_minutes`` (default 10).

Rules
-----
Only **Start** events count for detection and precision (Ends are only read for the End lag and
count error of ``ends``, below); Starts of another
account than ``labels["account"]`` or outside ``[labels.start − tol, labels.end + tol]`` are
ignored, so a store holding other data can be scored.

* **Detected.** An expect-"insight" label is detected when a Start of the same ``type``,
  ``region`` and ``insightObject`` has ``eventTime`` in ``[label.start − tol, label.start + tol]``.
  The earliest such Start is *the* detection; its **delay** is ``Start.eventTime − label.start``
  in minutes, which can be ≤ 0 because Starts are minute-aligned (an incident planted at
  08:15:40 starts at 08:15).
* **True Start.** A Start is true when an expect-"insight" (or "may") label of the same type and
  region has a window ``[start − tol, end + tol]`` containing it, whatever its object: a second insight
  about the same real incident (StopInstance beside DeleteInstance, the attacker's error codes)
  is not a false alarm. When several labels qualify, the one with the same object wins, then
  the nearest start, then the smallest id.
* **False Start.** Any other Start. It is **attributed** to a look-alike (expect "none", same
  region, window ``[start − tol, end + tol]`` containing it; any type, preferring the same
  type, then the same object, then the nearest start, then the id) when one overlaps, so a
  report can say which benign pattern fooled which detector. A look-alike explains a Start on
  its own object (or object ``*``) or, of another type, when it spans at most a day
  (:data:`LOOKALIKE_SPAN_OF_ANOTHER_TYPE`): the cloud services' calls, labelled as an IpInsight
  look-alike for the whole run, explain neither an IpInsight on someone's address nor a
  call-rate Start.
* **Rates.** ``recall = detected / labelled``, ``precision = true_starts / starts``, ``f1`` their
  harmonic mean (None when undefined), ``mean_delay``/``max_delay`` over detected labels
  (minutes), ``false_starts_per_region_week = false_starts / (regions × weeks)`` with
  ``weeks = (labels.end − labels.start) / 7 days`` (``labels.days / 7`` when the span is
  missing) and ``regions`` = ``len(labels.regions)``. The top-level
  ``false_starts_per_region_week`` is per region: that region's false Starts / weeks (the
  figure a "at most one false alarm per region per week" target is checked against).

Everything is computed per insight type and overall; lists are sorted, so the same inputs give
the same dict (and the same JSON).

Kinds, intensity and Ends
-------------------------
Over the expect-"insight" labels, :func:`outcomes` gives one row per label and
:func:`summarize_outcomes` turns rows (of one run or pooled over runs) into:

* ``by_scenario``: per scenario kind, recall and Start delays, and the End figures below.
* ``by_intensity``: per scenario kind, label type and intensity measure, recall per **fixed**
  bin of the label's primary intensity (:data:`INTENSITY_BINS`, so figures compare across
  runs). Labels carry ``intensity`` (:mod:`insights_kit.stealth`): the measure is ``calls``
  for ``quiet_stranger`` and ``multi_api_probe``, ``error_share`` for ``error_creep``, and for
  the rate kinds ``rate_ratio`` = rate_per_minute / max(baseline_per_minute,
  :data:`BASELINE_FLOOR_PER_MINUTE`) when the baseline is known, ``rate_per_minute`` when not.
  Labels without ``intensity`` are left out of it.
* ``ends``: for detected labels whose detecting Start has an End (same ``sharedEventId``),
  the **End lag** (End eventTime − label end, minutes: how long the insight stays open after
  the activity's last event) and the **count error** ((End insightCount − labelled count) /
  labelled count; the labelled count is ``intensity.errors`` for ApiErrorRateInsight labels
  that have it, else ``intensity.calls``, else the label's ``events``).

Examples
--------
>>> import polars as pl
>>> from datetime import datetime, timezone
>>> labels = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-08T00:00:00Z", "regions": ["cn-hangzhou"],
...           "incidents": [{"id": "i1", "scenario": "bulk-delete", "expect": "insight",
...                          "type": "ApiCallRateInsight", "region": "cn-hangzhou", "object": "DeleteInstance",
...                          "start": "2025-03-04T08:15:40Z", "end": "2025-03-04T08:30:00Z"}]}
>>> starts = pl.DataFrame({"eventId": ["E1"], "state": ["Start"], "insightType": ["ApiCallRateInsight"],
...                        "acsRegion": ["cn-hangzhou"], "insightObject": ["DeleteInstance"],
...                        "eventTime": [datetime(2025, 3, 4, 8, 15, tzinfo=timezone.utc)]})
>>> s = score(starts, labels)
>>> s["overall"]["recall"], s["overall"]["precision"], s["overall"]["mean_delay"]
(1.0, 1.0, -0.666667)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl

from insights_kit.schema import UTC_DATETIME

#: The types insights-kit detects; always reported, even with nothing labelled.
from insights_kit.schema import INSIGHT_TYPES  # noqa: E402

#: Columns of :func:`match` (one row per label).
MATCH_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "scenario": pl.String(),
    "expect": pl.String(),
    "type": pl.String(),
    "region": pl.String(),
    "object": pl.String(),
    "start": UTC_DATETIME,
    "end": UTC_DATETIME,
    "detected": pl.Boolean(),  # null for look-alikes
    "eventId": pl.String(),  # the detecting Start
    "eventTime": UTC_DATETIME,
    "delayMinutes": pl.Float64(),
    "starts": pl.Int64(),  # true Starts matched to an incident / false Starts attributed to a look-alike
}

#: Columns of :func:`classify_starts` (one row per Start).
START_SCHEMA: dict[str, pl.DataType] = {
    "eventId": pl.String(),
    "eventTime": UTC_DATETIME,
    "region": pl.String(),
    "type": pl.String(),
    "object": pl.String(),
    "verdict": pl.String(),  # "true" | "false"
    "labelId": pl.String(),  # the incident a true Start belongs to
    "lookalikeId": pl.String(),  # the look-alike a false Start hit, if any
    "lookalikeScenario": pl.String(),
}

_REQUIRED_LABEL_KEYS = ("id", "expect", "region", "start", "end")

#: Upper bin edges of each intensity measure; a value ``v`` is in bin ``[lo, hi)``.
INTENSITY_BINS: dict[str, tuple[float, ...]] = {
    "rate_ratio": (3.0, 10.0, 30.0, 100.0, 300.0),
    "rate_per_minute": (1.0, 3.0, 10.0, 30.0, 100.0),
    "calls": (5.0, 10.0, 15.0, 20.0),
    "error_share": (0.2, 0.3, 0.4),
}
#: The measure of a kind whose primary intensity is not its rate.
PRIMARY_MEASURE: dict[str, str] = {"quiet_stranger": "calls", "multi_api_probe": "calls", "error_creep": "error_share"}
#: A rate relative to an idle series (baseline 0) is meaningless: baselines below this are
#: raised to it (the rate detectors' default ``min_expected``, calls per minute).
BASELINE_FLOOR_PER_MINUTE = 0.05

#: Columns of :func:`outcomes` (one row per expect-"insight" label).
OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "scenario": pl.String(),
    "type": pl.String(),
    "detected": pl.Boolean(),
    "delayMinutes": pl.Float64(),
    "measure": pl.String(),  # null: the label has no intensity
    "intensity": pl.Float64(),
    "bin": pl.String(),
    "hasEnd": pl.Boolean(),
    "endLagMinutes": pl.Float64(),
    "countError": pl.Float64(),
}


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    ts = datetime.fromisoformat(str(value))
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def load_labels(path: str | Path) -> dict:
    """Read and check the simulator's ``labels.json``.

    Raises ``ValueError`` when ``incidents`` is missing or an incident lacks one of
    ``id``, ``expect``, ``region``, ``start``, ``end``, has an ``expect`` other than
    ``"insight"``/``"none"``/``"may"``, an unparsable time, or an id used twice. The dict is returned
    as read (times stay text).

    Examples
    --------
    >>> import json, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.json")
    >>> _ = open(path, "w").write(json.dumps({"incidents": []}))
    >>> load_labels(path)["incidents"]
    []
    """
    with open(path, encoding="utf-8") as fh:
        labels = json.load(fh)
    if not isinstance(labels, dict) or not isinstance(labels.get("incidents"), list):
        raise ValueError(f"{path}: expected an object with an 'incidents' list")
    seen: set[str] = set()
    for position, item in enumerate(labels["incidents"]):
        where = f"{path}: incident {position}"
        missing = [k for k in _REQUIRED_LABEL_KEYS if item.get(k) is None]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        if item["expect"] not in ("insight", "none", "may"):
            raise ValueError(f"{where}: expect must be 'insight', 'none' or 'may', got {item['expect']!r}")
        if item["expect"] in ("insight", "may") and not item.get("type"):
            raise ValueError(f"{where}: an expected insight needs a type")
        for key in ("start", "end"):
            try:
                _time(item[key])
            except ValueError:
                raise ValueError(f"{where}: unparsable {key} {item[key]!r}") from None
        if item["id"] in seen:
            raise ValueError(f"{where}: duplicate id {item['id']!r}")
        seen.add(item["id"])
    return labels


def _labels_frame(labels: dict) -> pl.DataFrame:
    rows = [
        {
            "id": str(item["id"]),
            "scenario": item.get("scenario"),
            "expect": item["expect"],
            "type": item.get("type"),
            "region": item["region"],
            "object": None if item.get("object") is None else str(item["object"]),
            "start": _time(item["start"]),
            "end": _time(item["end"]),
        }
        for item in labels.get("incidents", [])
    ]
    schema = {k: MATCH_SCHEMA[k] for k in ("id", "scenario", "expect", "type", "region", "object", "start", "end")}
    return pl.DataFrame(rows, schema=schema).sort("id")


def _starts(insights: pl.DataFrame, labels: dict, tolerance: timedelta) -> pl.DataFrame:
    """The Start events under evaluation, renamed to label vocabulary."""
    frame = insights
    if "state" in frame.columns:
        frame = frame.filter(pl.col("state") == "Start")
    account = labels.get("account")
    if account is not None and "recipientAccountId" in frame.columns:
        frame = frame.filter(pl.col("recipientAccountId") == str(account))
    span_start, span_end = _time(labels.get("start")), _time(labels.get("end"))
    if span_start is not None:
        frame = frame.filter(pl.col("eventTime") >= span_start - tolerance)
    if span_end is not None:
        frame = frame.filter(pl.col("eventTime") <= span_end + tolerance)
    return frame.select(
        pl.col("eventId").cast(pl.String),
        pl.col("eventTime").cast(UTC_DATETIME),
        pl.col("acsRegion").cast(pl.String).alias("region"),
        pl.col("insightType").cast(pl.String).alias("type"),
        pl.col("insightObject").cast(pl.String).alias("object"),
    ).sort(["eventTime", "eventId"])


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


#: A look-alike of another type explains a Start only when it is an episode, not a background
#: that runs all fortnight (the cloud services' calls would otherwise explain every Start).
LOOKALIKE_SPAN_OF_ANOTHER_TYPE = timedelta(days=1)


def _lookalike_rank(lab: dict, start: dict) -> tuple:
    # The look-alike most like the Start explains it best: same type, same object, nearest.
    same_type, same_object = lab["type"] == start["type"], lab["object"] == start["object"]
    return (not same_type, not same_object, abs(lab["start"] - start["eventTime"]), lab["id"])


def classify_starts(insights: pl.DataFrame, labels: dict, *, tolerance_minutes: int = 10) -> pl.DataFrame:
    """One row per Start: true (with its incident) or false (with the look-alike it hit).

    See the module docstring for the rules. Columns are :data:`START_SCHEMA`, sorted by
    ``(eventTime, eventId)``.
    """
    tol = timedelta(minutes=tolerance_minutes)
    starts = _starts(insights, labels, tol)
    label_rows = _labels_frame(labels).to_dicts()
    real = [lab for lab in label_rows if lab["expect"] in ("insight", "may")]
    benign = [lab for lab in label_rows if lab["expect"] == "none"]

    def covers(lab: dict, ts: datetime) -> bool:
        return lab["start"] - tol <= ts <= lab["end"] + tol

    rows = []
    for st in starts.iter_rows(named=True):
        ts = st["eventTime"]
        candidates = [
            lab for lab in real if lab["type"] == st["type"] and lab["region"] == st["region"] and covers(lab, ts)
        ]
        if candidates:
            best = min(candidates, key=lambda lab: (lab["object"] != st["object"], abs(lab["start"] - ts), lab["id"]))
            true_row = {"verdict": "true", "labelId": best["id"], "lookalikeId": None, "lookalikeScenario": None}
            rows.append({**st, **true_row})
            continue
        hits = [lab for lab in benign if lab["region"] == st["region"] and covers(lab, ts) and (
            lab["object"] in ("*", st["object"])
            or (lab["type"] != st["type"] and lab["end"] - lab["start"] <= LOOKALIKE_SPAN_OF_ANOTHER_TYPE))]
        hit = min(hits, key=lambda lab: _lookalike_rank(lab, st)) if hits else None
        rows.append(
            {
                **st,
                "verdict": "false",
                "labelId": None,
                "lookalikeId": hit["id"] if hit else None,
                "lookalikeScenario": hit["scenario"] if hit else None,
            }
        )
    return pl.DataFrame(rows, schema=START_SCHEMA)


def match(insights: pl.DataFrame, labels: dict, *, tolerance_minutes: int = 10) -> pl.DataFrame:
    """One row per labelled incident: was it detected, by which Start, how late.

    Parameters
    ----------
    insights
        :func:`insights_kit.store.read_events` output (needs ``eventId``, ``eventTime``,
        ``acsRegion``, ``insightType``, ``insightObject``; ``state`` and
        ``recipientAccountId`` are used when present).
    labels
        The simulator's labels (:func:`load_labels`).
    tolerance_minutes
        How far a Start may be from the labelled start (and beyond the labelled end). A label's
        own ``tolerance_minutes`` (sustained shifts: 30) allows a later Start.

    Returns
    -------
    polars.DataFrame
        :data:`MATCH_SCHEMA`, sorted by label id. ``detected``/``eventId``/``eventTime``/
        ``delayMinutes`` are set for expect-"insight" labels (null ``detected`` for
        look-alikes); ``starts`` counts true Starts belonging to an incident, or false Starts
        attributed to a look-alike.

    Examples
    --------
    >>> match(pl.DataFrame(schema={"eventId": pl.String, "eventTime": pl.Datetime("us", "UTC"),
    ...       "acsRegion": pl.String, "insightType": pl.String, "insightObject": pl.String}),
    ...       {"incidents": []}).height
    0
    """
    tol = timedelta(minutes=tolerance_minutes)
    starts = _starts(insights, labels, tol)
    classified = classify_starts(insights, labels, tolerance_minutes=tolerance_minutes)
    per_label = {
        **dict(classified.filter(pl.col("labelId").is_not_null()).group_by("labelId").len().iter_rows()),
        **dict(classified.filter(pl.col("lookalikeId").is_not_null()).group_by("lookalikeId").len().iter_rows()),
    }
    start_rows = starts.to_dicts()
    # a label may allow a later Start (a sustained low-rate shift: 30 minutes), never an earlier one
    late = {str(item["id"]): timedelta(minutes=max(tolerance_minutes, int(item.get("tolerance_minutes") or 0)))
            for item in labels.get("incidents", [])}
    rows = []
    for lab in _labels_frame(labels).iter_rows(named=True):
        row = {**lab, "detected": None, "eventId": None, "eventTime": None, "delayMinutes": None}
        if lab["expect"] == "insight":
            hits = [
                st
                for st in start_rows
                if st["type"] == lab["type"]
                and st["region"] == lab["region"]
                and st["object"] == lab["object"]
                and lab["start"] - tol <= st["eventTime"] <= lab["start"] + late.get(lab["id"], tol)
            ]
            row["detected"] = bool(hits)
            if hits:
                first = min(hits, key=lambda st: (st["eventTime"], st["eventId"]))
                row.update(
                    eventId=first["eventId"],
                    eventTime=first["eventTime"],
                    delayMinutes=_round(_minutes(first["eventTime"] - lab["start"])),
                )
        row["starts"] = int(per_label.get(lab["id"], 0))
        rows.append(row)
    return pl.DataFrame(rows, schema=MATCH_SCHEMA)


def _weeks(labels: dict) -> float | None:
    start, end = _time(labels.get("start")), _time(labels.get("end"))
    if start is not None and end is not None and end > start:
        return (end - start).total_seconds() / 86400 / 7
    days = labels.get("days")
    return float(days) / 7 if days else None


def _missed(matched: pl.DataFrame) -> list[dict]:
    rows = (
        matched.filter((pl.col("expect") == "insight") & ~pl.col("detected"))
        .sort(["start", "id"])
        .select("id", "scenario", "type", "region", "object", "start", "end")
    )
    return [{**r, "start": _iso(r["start"]), "end": _iso(r["end"])} for r in rows.iter_rows(named=True)]


def _false(classified: pl.DataFrame) -> list[dict]:
    rows = classified.filter(pl.col("verdict") == "false").sort(["eventTime", "eventId"])
    return [
        {
            "eventId": r["eventId"],
            "eventTime": _iso(r["eventTime"]),
            "region": r["region"],
            "type": r["type"],
            "object": r["object"],
            "lookalike": r["lookalikeId"],
            "lookalikeScenario": r["lookalikeScenario"],
        }
        for r in rows.iter_rows(named=True)
    ]


def _metrics(matched: pl.DataFrame, classified: pl.DataFrame, *, regions: int, weeks: float | None) -> dict:
    real = matched.filter(pl.col("expect") == "insight")
    labelled = real.height
    detected = int(real["detected"].sum() or 0)
    starts = classified.height
    true_starts = classified.filter(pl.col("verdict") == "true").height
    false_starts = starts - true_starts
    recall = detected / labelled if labelled else None
    precision = true_starts / starts if starts else None
    if recall is None or precision is None:
        f1 = None
    else:
        f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    delays = real["delayMinutes"].drop_nulls()
    region_weeks = regions * weeks if weeks else None
    return {
        "labelled": labelled,
        "detected": detected,
        "recall": _round(recall),
        "starts": starts,
        "true_starts": true_starts,
        "false_starts": false_starts,
        "precision": _round(precision),
        "f1": _round(f1),
        "mean_delay": _round(delays.mean()) if delays.len() else None,
        "max_delay": _round(delays.max()) if delays.len() else None,
        "false_starts_per_region_week": _round(false_starts / region_weeks) if region_weeks else None,
        "missed": _missed(matched),
        "false": _false(classified),
    }


def primary_intensity(scenario: str | None, intensity: dict | None) -> tuple[str, float] | None:
    """The (measure, value) a label is binned on, or None without intensity.

    Examples
    --------
    >>> primary_intensity("slow_runaway", {"rate_per_minute": 6.0, "baseline_per_minute": 0.0})
    ('rate_ratio', 120.0)
    >>> primary_intensity("quiet_stranger", {"calls": 7, "rate_per_minute": 0.2})
    ('calls', 7.0)
    """
    if not intensity:
        return None
    measure = PRIMARY_MEASURE.get(scenario or "")
    if measure is not None and intensity.get(measure) is not None:
        return measure, float(intensity[measure])
    rate = intensity.get("rate_per_minute")
    if rate is None:
        return None
    base = intensity.get("baseline_per_minute")
    if base is None:
        return "rate_per_minute", float(rate)
    return "rate_ratio", float(rate) / max(float(base), BASELINE_FLOOR_PER_MINUTE)


def bin_labels(measure: str) -> list[tuple[str, float | None, float | None]]:
    """The bins of ``measure`` in order: (label, lo, hi), open-ended at both ends.

    >>> [b[0] for b in bin_labels("error_share")]
    ['<0.2', '0.2-0.3', '0.3-0.4', '>=0.4']
    """
    edges = INTENSITY_BINS[measure]
    text = [f"{e:g}" for e in edges]
    bins = [(f"<{text[0]}", None, edges[0])]
    bins += [(f"{a}-{b}", lo, hi) for a, b, lo, hi in zip(text, text[1:], edges, edges[1:], strict=False)]
    return bins + [(f">={text[-1]}", edges[-1], None)]


def _bin_of(measure: str, value: float) -> str:
    edges = INTENSITY_BINS[measure]
    return bin_labels(measure)[sum(value >= e for e in edges)][0]


def _reference_count(item: dict) -> float | None:
    intensity = item.get("intensity") or {}
    if item.get("type") == "ApiErrorRateInsight" and intensity.get("errors") is not None:
        return float(intensity["errors"])
    value = intensity.get("calls", item.get("events"))
    return None if value is None else float(value)


def _outcomes(matched: pl.DataFrame, insights: pl.DataFrame, labels: dict) -> pl.DataFrame:
    rows = []
    for item in labels.get("incidents", []):
        primary = primary_intensity(item.get("scenario"), item.get("intensity"))
        rows.append({
            "id": str(item["id"]),
            "measure": primary[0] if primary else None,
            "intensity": primary[1] if primary else None,
            "bin": _bin_of(*primary) if primary else None,
            "reference": _reference_count(item),
        })
    extra = pl.DataFrame(rows, schema={"id": pl.String, "measure": pl.String, "intensity": pl.Float64,
                                       "bin": pl.String, "reference": pl.Float64})
    real = matched.filter(pl.col("expect") == "insight").join(extra, on="id", how="left")
    if {"sharedEventId", "state"} <= set(insights.columns):
        counts = pl.col("insightCount") if "insightCount" in insights.columns else pl.lit(None, pl.Int64)
        shared = insights.select(pl.col("eventId").cast(pl.String), pl.col("sharedEventId").cast(pl.String))
        shared = shared.unique("eventId")
        ends = (
            insights.filter(pl.col("state") == "End")
            .select(pl.col("sharedEventId").cast(pl.String), pl.col("eventTime").cast(UTC_DATETIME).alias("_endTime"),
                    counts.cast(pl.Float64).alias("_count"))
            .sort("_endTime").unique("sharedEventId", keep="first")
        )
        real = real.join(shared, on="eventId", how="left").join(ends, on="sharedEventId", how="left")
    else:
        real = real.with_columns(_endTime=pl.lit(None, UTC_DATETIME), _count=pl.lit(None, pl.Float64))
    has_end = pl.col("detected") & pl.col("_endTime").is_not_null()
    return real.select(
        "id", "scenario", "type", "detected", "delayMinutes", "measure", "intensity", "bin",
        has_end.alias("hasEnd"),
        pl.when(has_end).then((pl.col("_endTime") - pl.col("end")).dt.total_seconds() / 60).alias("endLagMinutes"),
        pl.when(has_end & (pl.col("reference") > 0))
        .then((pl.col("_count") - pl.col("reference")) / pl.col("reference")).alias("countError"),
    ).cast(OUTCOME_SCHEMA).sort("id")


def outcomes(insights: pl.DataFrame, labels: dict, *, tolerance_minutes: int = 10) -> pl.DataFrame:
    """One row per expect-"insight" label: detected, delay, intensity bin, End lag, count error.

    Columns are :data:`OUTCOME_SCHEMA`, sorted by id. Rows of several runs can be
    concatenated and given to :func:`summarize_outcomes` (pooled figures).

    Examples
    --------
    >>> empty = pl.DataFrame(schema={"eventId": pl.String, "eventTime": pl.Datetime("us", "UTC"),
    ...     "acsRegion": pl.String, "insightType": pl.String, "insightObject": pl.String})
    >>> lab = {"incidents": [{"id": "a", "scenario": "quiet_stranger", "expect": "insight", "type": "IpInsight",
    ...     "region": "r", "object": "1.2.3.4", "start": "2025-03-06T21:00:00Z", "end": "2025-03-06T21:30:00Z",
    ...     "intensity": {"calls": 4}}]}
    >>> outcomes(empty, lab).select("detected", "measure", "bin").row(0)
    (False, 'calls', '<5')
    """
    return _outcomes(match(insights, labels, tolerance_minutes=tolerance_minutes), insights, labels)


def _end_stats(rows: pl.DataFrame) -> dict:
    ended = rows.filter(pl.col("hasEnd"))
    lag, err = ended["endLagMinutes"], ended["countError"].drop_nulls()
    return {
        "matched": int(rows["detected"].sum() or 0),
        "with_end": ended.height,
        "mean_end_lag": _round(lag.mean()) if lag.len() else None,
        "max_end_lag": _round(lag.max()) if lag.len() else None,
        "mean_count_error": _round(err.mean()) if err.len() else None,
        "mean_abs_count_error": _round(err.abs().mean()) if err.len() else None,
    }


def _recall(rows: pl.DataFrame) -> dict:
    detected = int(rows["detected"].sum() or 0)
    delays = rows["delayMinutes"].drop_nulls()
    return {
        "labelled": rows.height,
        "detected": detected,
        "recall": _round(detected / rows.height) if rows.height else None,
        "mean_delay": _round(delays.mean()) if delays.len() else None,
        "max_delay": _round(delays.max()) if delays.len() else None,
    }


def summarize_outcomes(rows: pl.DataFrame) -> dict:
    """``by_scenario``, ``by_intensity`` and ``ends`` (see the module docstring) of :func:`outcomes` rows.

    ``by_intensity[kind][type][measure]`` lists every bin of the measure, empty ones too
    (``labelled`` 0, ``recall`` None), so tables of different runs line up.
    """
    by_scenario = {
        kind: {**_recall(group), **_end_stats(group)}
        for kind, group in sorted(
            ((k, rows.filter(pl.col("scenario").eq_missing(k))) for k in rows["scenario"].unique().to_list()),
            key=lambda kv: str(kv[0]),
        )
    }
    by_intensity: dict[str, dict] = {}
    graded = rows.filter(pl.col("measure").is_not_null())
    for (kind, type_, measure), group in sorted(graded.group_by("scenario", "type", "measure"), key=lambda kv: kv[0]):
        bins = []
        for name, lo, hi in bin_labels(measure):
            in_bin = group.filter(pl.col("bin") == name)
            bins.append({"bin": name, "lo": lo, "hi": hi, **_recall(in_bin)})
        by_intensity.setdefault(kind, {}).setdefault(type_, {})[measure] = bins
    types = sorted(rows["type"].drop_nulls().unique().to_list())
    ends = {"overall": _end_stats(rows), "by_type": {t: _end_stats(rows.filter(pl.col("type") == t)) for t in types}}
    return {"by_scenario": by_scenario, "by_intensity": by_intensity, "ends": ends}


def score(insights: pl.DataFrame, labels: dict, *, tolerance_minutes: int = 10) -> dict:
    """Recall, precision, delays and false-alarm rates, per insight type and overall.

    Returns
    -------
    dict
        ``{"tolerance_minutes", "weeks", "regions", "overall": {...}, "by_type": {type: {...}},
        "false_starts_by_region": {region: n}, "false_starts_per_region_week": {region: rate},
        "by_scenario", "by_intensity", "ends"}`` (the last three: :func:`summarize_outcomes`).
        ``overall`` and each ``by_type`` entry hold ``labelled``, ``detected``, ``recall``,
        ``starts``, ``true_starts``, ``false_starts``, ``precision``, ``f1``, ``mean_delay`` and
        ``max_delay`` (minutes), ``false_starts_per_region_week`` (false Starts / (regions ×
        weeks)), ``missed`` (the undetected labels, sorted by start and id) and ``false`` (the
        false Starts, sorted by eventTime and eventId, each with the ``lookalike`` it hit or
        None). None where a rate is undefined (recall with nothing labelled, precision with no
        Start). ``regions`` is the sorted list of regions used as the denominator. Floats are
        rounded to 6 decimals.

    Examples
    --------
    >>> s = score(pl.DataFrame(schema={"eventId": pl.String, "eventTime": pl.Datetime("us", "UTC"),
    ...           "acsRegion": pl.String, "insightType": pl.String, "insightObject": pl.String}),
    ...           {"incidents": [], "regions": ["cn-hangzhou"], "days": 7})
    >>> s["overall"]["starts"], s["overall"]["recall"], s["weeks"], s["false_starts_per_region_week"]
    (0, None, 1.0, {'cn-hangzhou': 0.0})
    """
    matched = match(insights, labels, tolerance_minutes=tolerance_minutes)
    classified = classify_starts(insights, labels, tolerance_minutes=tolerance_minutes)
    weeks = _weeks(labels)
    region_list = sorted(set(labels.get("regions") or []))
    if not region_list:  # older labels: the regions the labels and Starts mention
        region_list = sorted(set(matched["region"].drop_nulls()) | set(classified["region"].drop_nulls()))
    regions = len(region_list)

    types = sorted(set(INSIGHT_TYPES) | set(matched["type"].drop_nulls()) | set(classified["type"].drop_nulls()))
    by_type = {
        kind: _metrics(
            matched.filter(pl.col("type") == kind),
            classified.filter(pl.col("type") == kind),
            regions=regions,
            weeks=weeks,
        )
        for kind in types
    }
    false_rows = classified.filter(pl.col("verdict") == "false")
    by_region = {
        region: false_rows.filter(pl.col("region") == region).height
        for region in sorted(set(region_list) | set(false_rows["region"].drop_nulls()))
    }
    return {
        "tolerance_minutes": tolerance_minutes,
        "weeks": _round(weeks),
        "regions": region_list,
        "overall": _metrics(matched, classified, regions=regions, weeks=weeks),
        "by_type": by_type,
        "false_starts_by_region": by_region,
        "false_starts_per_region_week": {r: (_round(n / weeks) if weeks else None) for r, n in by_region.items()},
        **summarize_outcomes(_outcomes(matched, insights, labels)),
    }
