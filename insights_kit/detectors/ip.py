"""IpInsight: calls from an unusual source IP address, with an explainable heterogeneity score.

What fires
----------
An address is *new* on a UTC day when the unit saw no call from it in the ``history_days``
whole days before that day. Each new (address, day) is a candidate, judged causally: at every
minute the address is active, its activity so far that day is scored; the first minute the
score reaches ``threshold`` is ``firedAt``. At most one IpInsight per address per day; it
starts at the minute of the address's first call that day and ends once the address has
been quiet for ``end_quiet_minutes`` or at the end of the day (``endTime`` = last call minute
+ 1; null while that is not yet known at ``data_end``).

Heterogeneity score (**higher = more anomalous**, in [0, 1])
----------------------------------------------------------
Eight dimensions, each a score in [0, 1] and a verdict in GuardDuty's vocabulary, judged
against the history window (whole days before the current day; what other addresses did
earlier the same day is deliberately ignored, so a day is judged against settled history):

``network``     the address (FREQUENT), its /24 (INFREQUENT; a known *private* /16 too), its
                /16 (RARE) seen in the window, or none of them (UNSEEN). Scores 0/0.3/0.7/1.
``asn``         share of the window's active days with calls from the address's ASN:
                >= 50 % FREQUENT, >= 10 % INFREQUENT, > 0 RARE, 0 UNSEEN. Private addresses
                share one pseudo-ASN ``private`` (a VPC in daily use is familiar); reserved
                addresses and public ones the offline database misses score a neutral 0.5
                with verdict INFREQUENT (no evidence either way).
``country``     as ``asn``, for the country.
``userAgent``   worst over the calls so far: the (principal, user agent) pair was seen
                (FREQUENT), the principal used that agent's family in another version
                (INFREQUENT), the family is known in the unit but not for this principal
                (RARE), the family is new to the unit (UNSEEN).
``principal``   worst over the principals so far: used this /24 before (FREQUENT), known in
                this /16 or ASN (INFREQUENT), known but never from this /16 or ASN (RARE),
                never seen in the unit (UNSEEN).
``sensitiveApis`` 0.5 x max + 0.5 x mean per-call sensitivity: 1 for a sensitive write,
                0.4 sensitive read, 0.1 other write, 0 other read (sensitive =
                ``sensitiveAction`` or ``sensitive_patterns``).
``errorShare``  the address's error share, shrunk towards the unit's usual share p0 by
                ``error_pseudo_calls``, as excess over p0: (share - p0) / (1 - p0), clipped.
``timeOfDay``   share of its calls in clock hours the unit is usually quiet in: an hour
                active on >= ``quiet_hour_share`` of the window's days is not quiet, one
                never active is fully quiet, linear in between.

Continuous dimensions get verdicts by score band: < 0.15 FREQUENT, < 0.5 INFREQUENT,
< 0.85 RARE, else UNSEEN. Read a verdict as "how familiar this aspect of the address's
activity is for the unit": FREQUENT = routine, UNSEEN = never seen / extreme.

``weightedMean`` is the ``weight_*``-weighted mean of the eight scores. When at least
``min_training_profiles`` historical (address, day) profiles exist in the window (the same
eight-score vector, for every address active on each past day, computed against that day's
own window and kept in state ``ip_profiles``), an IsolationForest is trained on them;
``isolationForest`` is the share of training profiles whose anomaly score (``-score_samples``)
is lower than the candidate's. ``score = (1 - if_weight) x weightedMean + if_weight x
isolationForest`` (just ``weightedMean`` when untrained).

Learning period (cold start)
----------------------------
Candidates whose first call falls before ``ctx.learning_end`` are withheld (counter
``withheld``). Once ``data_end >= learning_end`` each is released (counter ``released``,
emitted with its real ``startTime``) only if the address was active in fewer than
``established_hours`` distinct clock hours of [data_start, learning_end), made less than
``established_call_share`` of that window's address-sourced calls, and its weighted
mean, judged against the learning window's other addresses (leave-one-out) on its calls
before ``learning_end``, reaches ``threshold``. ``firedAt`` is then the first such minute.

State (``ctx.new_history``)
---------------------------
``ip_activity`` (day, address, principal, userAgent, calls, errors) and ``ip_hours`` (day,
hour, calls) for the last ``history_days`` complete days; ``ip_profiles`` (day, address,
calls, eight scores) for the same days; ``ip_masked`` (day, address) of the incidents whose
activity scores no later day (see "Incidents never make their network familiar" in
docs/detectors.md); ``ip_minutes`` minute rows of the still-open day
(and of the learning window until it is decided), so a run cut at any minute continues
exactly; ``ip_incidents``, the incidents of those complete days (final: a complete day's
incident has ended); ``ip_state``, the first day not yet settled (``keepFrom``) and whether
the learning window was closed. Once it is, a run with that history evaluates only the days
from ``keepFrom`` on (or from the day of the oldest event new to the state,
``ctx.changed_since``, when a late delivery reaches further back) and replays the stored
incidents of the settled days: its cost follows the new data, not the history. Days present
in the evaluated events are always recomputed from the events. The counters (``suppressed``,
``withheld``, ``released``) then count the days the run evaluated.

Examples
--------
>>> from insights_kit.detectors.ip import IpConfig, IpDetector
>>> detector = IpDetector(IpConfig(threshold=0.65))
>>> detector.insight_type
'IpInsight'
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from insights_kit import ipintel
from insights_kit.detectors.base import INCIDENT_SCHEMA, Detector, UnitContext, conform_incidents, empty_incidents
from insights_kit.detectors.ip_features import (
    ACTIVITY_SCHEMA,
    DEFAULT_SENSITIVE_PATTERNS,
    DIMENSIONS,
    HOURS_SCHEMA,
    MINUTE_SCHEMA,
    activity_from_minutes,
    address_keys,
    day_number,
    day_start,
    expand_to_days,
    explain,
    hours_from_minutes,
    minute_rows,
    score_dimensions,
    sensitivity_expr,
)
from insights_kit.schema import UTC_DATETIME

PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Int64(),
    "address": pl.String(),
    "calls": pl.Int64(),
    **{name: pl.Float64() for name in DIMENSIONS},
}


@dataclass(frozen=True)
class IpConfig:
    """Parameters of IpInsight (TOML section ``[ip]``).

    Parameters
    ----------
    history_days : int, default 30
        Days an address stays known, and the window every dimension is judged against (>= 1).
    threshold : float, default 0.6
        Score at which a candidate fires; the score is in [0, 1], so is the threshold.
    if_weight : float, default 0.3
        Weight of the IsolationForest percentile in the score (when trained), in [0, 1].
    min_training_profiles : int, default 30
        Historical (address, day) profiles needed before an IsolationForest is trained (>= 1).
    n_estimators : int, default 100
        IsolationForest trees (>= 1).
    n_jobs : int, default 1
        Threads that build the trees (the forest is the same for any value); >= 1, or -1
        for one per CPU.
    max_samples : int, default 256
        IsolationForest sub-sample size (capped at the number of profiles); >= 1.
    seed : int, default 0
        IsolationForest ``random_state``: the same input gives the same scores; in
        [0, 2**32 - 1] (what numpy accepts).
    percentile_profiles : int, default 4096
        At most this many training profiles (an even stride over the sorted profiles) are
        scored as the percentile reference; bounds the cost on large units (>= 1).
    end_quiet_minutes : int, default 60
        Quiet minutes after which an incident ends (or at the end of the UTC day); >= 1.
    established_hours : int, default 3
        A learning-period address active in at least this many distinct clock hours of the
        learning window is established and never released; in [0, 24].
    established_call_share : float, default 0.5
        An address making at least this share of the learning window's address-sourced calls
        is established too (it is the baseline the others are judged against). Set above 1
        to use the hours rule alone; >= 0.
    weight_network, weight_asn, weight_country, weight_user_agent, weight_principal,
    weight_sensitive_apis, weight_error_share, weight_time_of_day : float
        Weights of the weighted mean (defaults 0.15, 0.15, 0.10, 0.15, 0.20, 0.15, 0.05,
        0.05; they need not sum to 1, the mean is normalised). Each >= 0, their sum > 0.
    frequent_share : float, default 0.5
        ASN/country active on at least this share of the window's days: FREQUENT; in [0, 1].
    infrequent_share : float, default 0.1
        ... at least this share: INFREQUENT (above zero: RARE, zero: UNSEEN); in [0, 1] and
        at most ``frequent_share``.
    quiet_hour_share : float, default 0.5
        A clock hour active on at least this share of the window's days is not quiet; in [0, 1].
    error_pseudo_calls : float, default 5.0
        Pseudo-calls at the usual error share added before comparing error shares (>= 0).
    sensitive_patterns : tuple of str
        Regular expressions on ``eventName`` marking sensitive APIs (see
        :data:`~insights_kit.detectors.ip_features.DEFAULT_SENSITIVE_PATTERNS`); strings only.
    sensitive_write, sensitive_read, plain_write : float, default 1.0, 0.4, 0.1
        Per-call sensitivity of a sensitive write, a sensitive read, another write (>= 0).
    stranger_score : float, default 0.65
        Score floor of a *stranger*: an address whose network, ASN and country are all UNSEEN
        in the window, used by a principal known in the region (GuardDuty's new-geography
        finding: one call is enough); 0 disables it.
        A new address in a known /24, ASN or country, or a private address, is never a
        stranger. In [0, 1].

    Examples
    --------
    >>> IpConfig().threshold
    0.6
    """

    history_days: int = 30
    threshold: float = 0.6
    if_weight: float = 0.3
    min_training_profiles: int = 30
    n_estimators: int = 100
    n_jobs: int = 1
    max_samples: int = 256
    seed: int = 0
    percentile_profiles: int = 4096
    end_quiet_minutes: int = 60
    established_hours: int = 3
    established_call_share: float = 0.5
    weight_network: float = 0.15
    weight_asn: float = 0.15
    weight_country: float = 0.10
    weight_user_agent: float = 0.15
    weight_principal: float = 0.20
    weight_sensitive_apis: float = 0.15
    weight_error_share: float = 0.05
    weight_time_of_day: float = 0.05
    frequent_share: float = 0.5
    infrequent_share: float = 0.1
    quiet_hour_share: float = 0.5
    error_pseudo_calls: float = 5.0
    sensitive_patterns: tuple = DEFAULT_SENSITIVE_PATTERNS
    sensitive_write: float = 1.0
    sensitive_read: float = 0.4
    plain_write: float = 0.1
    stranger_score: float = 0.65

    def __post_init__(self) -> None:
        # Imported here: the checks are the config layer's, this module only declares ranges.
        from insights_kit.validate import check_range

        for name in ("history_days", "min_training_profiles", "n_estimators", "max_samples",
                     "percentile_profiles", "end_quiet_minutes"):
            check_range(name, getattr(self, name), low=1)
        if self.n_jobs != -1:
            check_range("n_jobs", self.n_jobs, low=1)
        check_range("seed", self.seed, low=0, high=2**32 - 1)
        check_range("established_hours", self.established_hours, low=0, high=24)
        for name in ("threshold", "if_weight", "frequent_share", "infrequent_share", "quiet_hour_share",
                     "stranger_score"):
            check_range(name, getattr(self, name), low=0.0, high=1.0)
        if self.infrequent_share > self.frequent_share:
            raise ValueError(f"infrequent_share must be <= frequent_share ({self.frequent_share}), "
                             f"got {self.infrequent_share}")
        for name in ("established_call_share", "error_pseudo_calls", "sensitive_write", "sensitive_read",
                     "plain_write"):
            check_range(name, getattr(self, name), low=0.0)
        weight_fields = [name for name in self.__dataclass_fields__ if name.startswith("weight_")]
        for name in weight_fields:
            check_range(name, getattr(self, name), low=0.0)
        if sum(getattr(self, name) for name in weight_fields) <= 0:
            raise ValueError("weight_* must not all be 0 (the score is their weighted mean)")
        if not all(isinstance(p, str) for p in self.sensitive_patterns):
            raise ValueError("sensitive_patterns must be a list of strings")

    @property
    def weights(self) -> dict[str, float]:
        """Dimension name -> weight, in :data:`DIMENSIONS` order."""
        values = (
            self.weight_network,
            self.weight_asn,
            self.weight_country,
            self.weight_user_agent,
            self.weight_principal,
            self.weight_sensitive_apis,
            self.weight_error_share,
            self.weight_time_of_day,
        )
        return dict(zip(DIMENSIONS, values, strict=True))


#: Passes of detection with incidents left out of the history (see IpDetector.detect).
MASK_PASSES = 3
#: (day, address) of the incidents whose activity scores no later day.
MASKED_SCHEMA = {"day": pl.Int64, "address": pl.String}


def _round6(x: float | None) -> float | None:
    if x is None or x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.6g}")


def _frame(data: pl.DataFrame | None, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if data is None or data.is_empty():
        return pl.DataFrame(schema=schema)
    return data.select([pl.col(c).cast(t) for c, t in schema.items()])


class IpDetector(Detector):
    """Unusual source IP addresses (``IpInsight``); see the module docstring.

    Examples
    --------
    >>> IpDetector(IpConfig()).config.history_days
    30
    """

    insight_type = "IpInsight"

    def __init__(self, config: IpConfig | None = None) -> None:
        super().__init__(config or IpConfig())

    # ------------------------------------------------------------------ helpers
    def _weighted_mean(self) -> pl.Expr:
        weights = self.config.weights
        total = sum(weights.values()) or 1.0
        return (pl.sum_horizontal([pl.col(n) * w for n, w in weights.items()]) / total).alias("weightedMean")

    def _score(self, candidates, history, history_hours, keys, *, cumulative: bool) -> pl.LazyFrame:
        cfg = self.config
        return score_dimensions(
            candidates,
            history,
            history_hours,
            keys,
            cumulative=cumulative,
            frequent_share=cfg.frequent_share,
            infrequent_share=cfg.infrequent_share,
            quiet_hour_share=cfg.quiet_hour_share,
            error_pseudo_calls=cfg.error_pseudo_calls,
        ).with_columns(self._weighted_mean())

    def _forest_percentiles(self, training: pl.DataFrame, rows: pl.DataFrame) -> np.ndarray | None:
        """Anomaly percentile of each row among the training profiles; None when untrained."""
        cfg = self.config
        if training.height < cfg.min_training_profiles or rows.height == 0:
            return None
        # imported here: scikit-learn takes over a second to import, and most runs on small
        # or quiet data never need a forest
        from sklearn.ensemble import IsolationForest

        x_train = np.ascontiguousarray(training.sort("day", "address").select(DIMENSIONS).to_numpy())
        # The masking passes of detect() score most days again on the same training profiles:
        # a forest is fitted once per distinct training set (same data and seed, same forest).
        key = hashlib.sha256(x_train.tobytes() + repr(x_train.shape).encode()).hexdigest()
        cached = self._forests.get(key)
        if cached is None:
            forest = IsolationForest(
                n_estimators=cfg.n_estimators,
                max_samples=min(cfg.max_samples, len(x_train)),
                random_state=cfg.seed,
                n_jobs=cfg.n_jobs,  # trees come from seeds drawn up front: same forest for any n_jobs
            ).fit(x_train)
            # the percentile reference: every profile, or an even deterministic stride of them
            stride = max(1, math.ceil(len(x_train) / cfg.percentile_profiles))
            cached = self._forests[key] = (forest, np.sort(-forest.score_samples(x_train[::stride])))
        forest, train_anomaly = cached
        # Cumulative per-minute profiles repeat a lot: score each distinct vector once.
        distinct, inverse = np.unique(rows.select(DIMENSIONS).to_numpy(), axis=0, return_inverse=True)
        anomaly = -forest.score_samples(distinct)[inverse.reshape(-1)]
        # ties count half: a candidate the forest cannot tell from every profile sits at 0.5, not 0
        lower = np.searchsorted(train_anomaly, anomaly, side="left")
        upper = np.searchsorted(train_anomaly, anomaly, side="right")
        return (lower + 0.5 * (upper - lower)) / len(train_anomaly)

    # ------------------------------------------------------------------ detect
    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        cfg = self.config
        self._forests: dict[str, tuple] = {}  # fitted forests of this call, by training set
        h = cfg.history_days
        for name in ("suppressed", "withheld", "released"):
            ctx.counters.setdefault(name, 0)
        data_end = ctx.data_end
        open_day = day_number_of(data_end - timedelta(microseconds=1))  # the day data_end falls in
        open_day_complete = day_start(open_day) + timedelta(days=1) <= data_end
        learning_decided = data_end >= ctx.learning_end

        # ---- incremental: the days the state has settled are not evaluated again ----
        settled = self._first_unsettled_day(ctx)
        if settled is not None:
            events = events.filter(pl.col("eventTime") >= day_start(settled))

        # ---- minute rows: state (minutes before the first event) + events ----------
        sensitivity = sensitivity_expr(
            cfg.sensitive_patterns,
            sensitive_write=cfg.sensitive_write,
            sensitive_read=cfg.sensitive_read,
            plain_write=cfg.plain_write,
        )
        fresh = minute_rows(events, sensitivity, data_end).collect()
        saved = _frame(ctx.history.get("ip_minutes"), MINUTE_SCHEMA)
        if fresh.height:
            saved = saved.filter(pl.col("minute") < fresh["minute"].min())
        minutes = pl.concat([saved, _frame(fresh, MINUTE_SCHEMA)]).sort("minute", "address", "principal", "userAgent")
        minutes = minutes.with_columns(day_number("minute").alias("day"))
        eval_days = sorted(minutes["day"].unique().to_list())

        # ---- daily activity: recomputed for days in the minute rows, else from state --
        act_now = activity_from_minutes(minutes.lazy()).collect()
        hours_now = hours_from_minutes(minutes.lazy()).collect()
        act_state = _frame(ctx.history.get("ip_activity"), ACTIVITY_SCHEMA).filter(~pl.col("day").is_in(eval_days))
        hours_state = _frame(ctx.history.get("ip_hours"), HOURS_SCHEMA).filter(~pl.col("day").is_in(eval_days))
        activity = pl.concat([act_state, _frame(act_now, ACTIVITY_SCHEMA)])
        hours = pl.concat([hours_state, _frame(hours_now, HOURS_SCHEMA)])

        keys = address_keys(ipintel.ip_table(activity["address"]))
        # Incidents never teach the history: an address's activity on its incident day is left
        # out of the history that scores every later day (networks, ASNs, principals, tools),
        # so the same attacker back next week from the next address of its /24 is still new.
        # The address itself stays seen (one IpInsight per new address; an allow-list entry
        # settles a false one). Up to MASK_PASSES passes, until the incidents stop changing.
        # Earlier runs' incidents come from the state (their days are not evaluated again).
        masked_state = _frame(ctx.history.get("ip_masked"), MASKED_SCHEMA).filter(~pl.col("day").is_in(eval_days))
        masked = pl.DataFrame(schema=MASKED_SCHEMA)
        # A pass only changes the days after the first (day, address) whose mask changed: the
        # history of a day holds earlier days only, so the results up to it are reused.
        # Candidates, the learning window's release and the hourly history do not depend on
        # the mask: computed once, before the passes.
        cand_rows, firsts, counts = self._candidates(minutes, activity, eval_days, ctx)
        learning_cands = firsts.filter(pl.col("startTime") < ctx.learning_end)
        released, scored_learning = pl.DataFrame(), pl.DataFrame()
        if learning_decided and learning_cands.height:
            released, scored_learning = self._fire_learning(minutes, cand_rows, learning_cands, keys, ctx)
            counts["released"] += released.height
        fixed = dict(cand_rows=cand_rows, normal_cands=firsts.filter(pl.col("startTime") >= ctx.learning_end),
                     released=released, scored_learning=scored_learning,
                     hist_hours=expand_to_days(hours.lazy(), eval_days, h).collect().lazy())
        reuse = None
        for _ in range(MASK_PASSES):
            left_out = pl.concat([masked_state, masked])
            incidents, profiles_new, profiles = self._detect_pass(
                minutes, activity.join(left_out, on=["day", "address"], how="anti"), keys, eval_days, data_end, ctx,
                reuse=reuse, **fixed)
            hit = (incidents.select(day_number("startTime").alias("day"), pl.col("insightObject").alias("address"))
                   .unique().sort("day", "address"))
            if hit.equals(masked):
                break
            changed = pl.concat([hit.join(masked, on=["day", "address"], how="anti"),
                                 masked.join(hit, on=["day", "address"], how="anti")])
            reuse = (int(changed["day"].min()), incidents, profiles_new)
            masked = hit
        for name, value in counts.items():
            ctx.counters[name] += value

        # ---- state for the next run ------------------------------------------------
        keep_from = open_day if not open_day_complete else open_day + 1
        keep_days = lambda frame: frame.filter(pl.col("day").is_between(keep_from - h, keep_from - 1))  # noqa: E731
        done = lambda frame: frame.filter(pl.col("day") < keep_from)  # noqa: E731
        keep_minutes = minutes.filter(pl.col("day") >= keep_from)
        learning_closed = learning_decided and data_end >= day_start(
            day_number_of(ctx.learning_end - timedelta(microseconds=1)) + 1)
        if not learning_closed:
            keep_minutes = minutes  # the learning window is not decided/closed yet: keep all of it
        if settled is not None:  # the settled days' incidents, as the run that settled them found them
            replayed = _frame(ctx.history.get("ip_incidents"), INCIDENT_SCHEMA).filter(
                day_number("startTime") < settled)
            incidents = pl.concat([replayed, conform_incidents(incidents)]).sort("startTime", "insightObject")
        ctx.new_history["ip_incidents"] = conform_incidents(incidents).with_columns(
            day_number("startTime").alias("day")).pipe(done).pipe(keep_days).drop("day")
        ctx.new_history["ip_state"] = pl.DataFrame({"keepFrom": [keep_from], "learningClosed": [learning_closed]},
                                                   schema={"keepFrom": pl.Int64, "learningClosed": pl.Boolean})
        ctx.new_history["ip_minutes"] = keep_minutes.select(list(MINUTE_SCHEMA))
        ctx.new_history["ip_activity"] = keep_days(done(activity)).sort(list(ACTIVITY_SCHEMA)[:4])
        ctx.new_history["ip_hours"] = keep_days(done(hours)).sort("day", "hour")
        ctx.new_history["ip_profiles"] = keep_days(profiles).sort("day", "address")
        ctx.new_history["ip_masked"] = keep_days(done(pl.concat([masked_state, masked]))).sort("day", "address")
        return incidents

    def _first_unsettled_day(self, ctx: UnitContext) -> int | None:
        """The first day to evaluate when the history settled the earlier ones; None: evaluate all.

        None without an ``ip_state`` (no state, or one written before it existed), while the
        learning window was still open, and for a run that ends before the settled days end
        (a rerun of an earlier window evaluates its own days).
        """
        state = ctx.history.get("ip_state")
        if state is None or state.is_empty() or not state["learningClosed"][0]:
            return None
        first = int(state["keepFrom"][0])
        if ctx.data_end < day_start(first):
            return None
        if ctx.changed_since is not None:
            first = min(first, day_number_of(ctx.changed_since))
        return first

    def _detect_pass(self, minutes, activity, keys, eval_days, data_end, ctx, *, cand_rows, normal_cands, released,
                     scored_learning, hist_hours, reuse: tuple | None = None):
        """One pass: the candidates scored with ``activity`` (and ``hist_hours``) as history.

        ``reuse``: (day, incidents, profiles) of the previous pass, whose results up to that day
        still hold; only later days are scored again. Returns (incidents, the new days'
        profiles, every profile: state and new).
        """
        upto = reuse[0] if reuse else None
        later = (lambda frame: frame.filter(pl.col("day") > upto)) if reuse else (lambda frame: frame)  # noqa: E731
        h = self.config.history_days
        hist_act = expand_to_days(activity.lazy(), eval_days, h).collect().lazy()

        # ---- profiles (IsolationForest training): complete days after learning ------
        profiles_state = _frame(ctx.history.get("ip_profiles"), PROFILE_SCHEMA)
        first_profile_day = day_number_of(ctx.learning_end - timedelta(microseconds=1)) + 1
        complete_days = [d for d in eval_days if day_start(d) + timedelta(days=1) <= data_end]
        stored_days = set(profiles_state["day"].to_list())
        todo = [d for d in complete_days if d >= first_profile_day and d not in stored_days and (upto is None or d > upto)]
        profiles_new = pl.DataFrame(schema=PROFILE_SCHEMA)
        if todo:
            profile_rows = minutes.lazy().filter(pl.col("day").is_in(todo)).rename({"day": "ctxKey"})
            profiles_new = (
                self._score(profile_rows, hist_act, hist_hours, keys, cumulative=False)
                .rename({"ctxKey": "day"})
                .select(list(PROFILE_SCHEMA))
                .collect()
            )
        if reuse:
            profiles_new = pl.concat([_frame(reuse[2], PROFILE_SCHEMA).filter(pl.col("day") <= upto),
                                      _frame(profiles_new, PROFILE_SCHEMA)])
        profiles = pl.concat([profiles_state, _frame(profiles_new, PROFILE_SCHEMA)]).unique(["day", "address"], keep="first")

        # the scored minutes come back too: the End reads the dimensions over the whole incident
        first, scored = self._fire_normal(cand_rows, later(normal_cands), hist_act, hist_hours, keys, profiles)
        fired = [first, *([later(released)] if released.height else [])]
        fired = pl.concat([f for f in fired if f.height] or [fired[0]], how="diagonal_relaxed")
        incidents = self._incidents(fired, cand_rows, ctx, {False: scored, True: scored_learning})
        if reuse:
            kept = reuse[1].filter(day_number("startTime") <= upto)
            incidents = pl.concat([kept, incidents]).sort("startTime", "insightObject")
        return incidents, profiles_new, profiles

    def _candidates(self, minutes, activity, eval_days, ctx) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
        """Addresses new on their day: (their non-allow-listed minute rows, each one's first
        minute as ``startTime``, the counters ``suppressed`` and ``withheld``)."""
        h = self.config.history_days
        allowed = (
            ipintel.in_networks(minutes["address"], ctx.allowlist.networks)
            if ctx.allowlist.networks
            else pl.DataFrame({"address": [], "inNetworks": []}, schema={"address": pl.String, "inNetworks": pl.Boolean})
        )
        seen = expand_to_days(activity.lazy().select("day", "address").unique(), eval_days, h).select(
            "ctxKey", "address").unique()
        day_firsts = (
            minutes.lazy()
            .group_by("day", "address")
            .agg(pl.col("minute").min().alias("firstMinute"))
            .join(seen, left_on=["day", "address"], right_on=["ctxKey", "address"], how="anti")
            .join(allowed.lazy(), on="address", how="left")
            .collect()
        )
        cand_minutes = minutes.filter(~pl.col("principal").is_in(list(ctx.allowlist.principals)))
        with_calls = cand_minutes.select("day", "address").unique()
        day_firsts = day_firsts.join(with_calls.with_columns(pl.lit(True).alias("hasCalls")), on=["day", "address"], how="left")
        suppressed = day_firsts.filter(pl.col("inNetworks").fill_null(False) | pl.col("hasCalls").is_null())
        candidates = day_firsts.join(suppressed.select("day", "address"), on=["day", "address"], how="anti")
        # the first call that counts is the first non-allow-listed one
        cand_rows = cand_minutes.join(candidates.select("day", "address"), on=["day", "address"], how="semi")
        firsts = cand_rows.group_by("day", "address").agg(pl.col("minute").min().alias("startTime"))
        withheld = firsts.filter(pl.col("startTime") < ctx.learning_end).height
        return cand_rows, firsts, {"suppressed": suppressed.height, "withheld": withheld, "released": 0}

    # ------------------------------------------------------------------ firing
    def _fire_normal(self, cand_rows, normal_cands, hist_act, hist_hours, keys, profiles
                     ) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
        """Score candidates minute by minute, one IsolationForest per day; first crossing."""
        if normal_cands.height == 0:
            return pl.DataFrame(), pl.DataFrame()
        rows = cand_rows.join(normal_cands.select("day", "address"), on=["day", "address"], how="semi")
        scored = (
            self._score(rows.lazy().rename({"day": "ctxKey"}), hist_act, hist_hours, keys, cumulative=True)
            .collect()
            .sort("ctxKey", "address", "minute")
        )
        parts = []
        h, w, threshold = self.config.history_days, self.config.if_weight, self.config.threshold
        # The percentile is in [0, 1]: below this weighted mean no candidate can reach the
        # threshold with or without the forest, and nothing is emitted, so skip the fit.
        reachable = (threshold - w) / (1 - w) if w < 1 else -math.inf
        for day, part in scored.group_by("ctxKey", maintain_order=True):
            day = day[0]
            training = profiles.filter(pl.col("day").is_between(day - h, day - 1))
            percentile = (
                self._forest_percentiles(training, part) if part["weightedMean"].max() >= reachable else None
            )
            parts.append(
                part.with_columns(
                    pl.Series("isolationForest", percentile, dtype=pl.Float64)
                    if percentile is not None
                    else pl.lit(None, dtype=pl.Float64).alias("isolationForest"),
                    pl.lit(training.height, dtype=pl.Int64).alias("trainingProfiles"),
                )
            )
        scored = pl.concat(parts)
        w = self.config.if_weight
        scored = scored.with_columns(
            pl.when(pl.col("isolationForest").is_not_null())
            .then((1 - w) * pl.col("weightedMean") + w * pl.col("isolationForest"))
            .otherwise(pl.col("weightedMean"))
            .alias("score")
        )
        scored = self._with_stranger(scored).rename({"ctxKey": "day"}).with_columns(pl.lit(False).alias("learning"))
        return self._first_crossing(scored), scored

    def _with_stranger(self, scored: pl.DataFrame) -> pl.DataFrame:
        """Floor the score of a never-seen network, ASN and country at ``stranger_score``."""
        # a principal new to the region is judged by the weighted mean: its usual office seen
        # for the first time in another region is not a stranger (history is per region)
        stranger = ((pl.col("network") >= 1.0) & (pl.col("asn") >= 1.0) & (pl.col("country") >= 1.0)
                    & (pl.col("principal") < 1.0))
        return scored.with_columns(
            stranger.alias("stranger"),
            pl.when(stranger).then(pl.max_horizontal("score", pl.lit(self.config.stranger_score)))
            .otherwise(pl.col("score")).alias("score"),
        )

    def _first_crossing(self, scored: pl.DataFrame) -> pl.DataFrame:
        return (
            scored.filter(pl.col("score") >= self.config.threshold)
            .sort("day", "address", "minute")
            .group_by("day", "address", maintain_order=True)
            .first()
            .rename({"minute": "firedAt"})
        )

    def _fire_learning(self, minutes, cand_rows, learning_cands, keys, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Release rule for withheld candidates: not established, and crosses leave-one-out."""
        cfg = self.config
        window = minutes.filter(pl.col("minute").is_between(ctx.data_start, ctx.learning_end, closed="left"))
        established = (
            window.group_by("address")
            .agg(pl.col("minute").dt.truncate("1h").n_unique().alias("activeHours"), pl.col("calls").sum())
            .filter(
                (pl.col("activeHours") >= cfg.established_hours)
                # the address carrying most of the window *is* the baseline: judging it against
                # the minority (leave-one-out) would be backwards
                | (pl.col("calls") >= cfg.established_call_share * pl.col("calls").sum())
            )
        )
        cands = (
            learning_cands.join(established, on="address", how="anti")
            .sort("day", "address")
            .with_row_index("i")
            .with_columns((-1 - pl.col("i").cast(pl.Int64)).alias("ctxKey"))
        )
        if cands.height == 0:
            return pl.DataFrame(), pl.DataFrame()
        ctx_of = cands.select("ctxKey", "address", "day").lazy()
        # leave-one-out: every context sees the learning window's other addresses only
        others = lambda frame: frame.join(ctx_of.select("ctxKey", pl.col("address").alias("cand")), how="cross").filter(  # noqa: E731
            pl.col("address") != pl.col("cand")
        )
        hist_act = others(activity_from_minutes(window.lazy())).drop("cand")
        hist_hours = (
            others(hours_from_minutes(window.lazy(), by=["address"]))
            .group_by("ctxKey", "day", "hour")
            .agg(pl.col("calls").sum())
        )
        rows = (
            cand_rows.lazy()
            .filter(pl.col("minute") < ctx.learning_end)
            .join(ctx_of, on=["address", "day"], how="inner")
            .drop("day")
        )
        scored = (
            self._score(rows, hist_act, hist_hours, keys, cumulative=True)
            .join(ctx_of, on=["ctxKey", "address"], how="left")
            .drop("ctxKey")
            .with_columns(
                pl.lit(None, dtype=pl.Float64).alias("isolationForest"),
                pl.lit(0, dtype=pl.Int64).alias("trainingProfiles"),
                pl.col("weightedMean").alias("score"),
                pl.lit(True).alias("learning"),
            )
            .collect()
        )
        scored = self._with_stranger(scored)
        return self._first_crossing(scored), scored

    # ------------------------------------------------------------------ incidents
    def _model(self, row: dict) -> dict:
        return {
            "score": _round6(row["score"]),
            "threshold": self.config.threshold,
            "weightedMean": _round6(row["weightedMean"]),
            "isolationForest": _round6(row["isolationForest"]),
            "trainingProfiles": int(row["trainingProfiles"]),
            "stranger": bool(row.get("stranger")),
            "calls": int(row["calls"]),
            "dimensions": [{**d, "score": _round6(d["score"])} for d in explain(row)],
        }

    def _incidents(self, fired: pl.DataFrame, cand_rows: pl.DataFrame, ctx: UnitContext,
                   scored_by_rule: dict[bool, pl.DataFrame]) -> pl.DataFrame:  # fmt: skip
        cfg = self.config
        if fired.height == 0:
            return empty_incidents()
        quiet = timedelta(minutes=cfg.end_quiet_minutes)
        per_minute = (
            cand_rows.join(fired.select("day", "address"), on=["day", "address"], how="semi")
            .group_by("day", "address", "minute")
            .agg(pl.col("calls").sum())
            .sort("day", "address", "minute")
        )
        # sessions: a gap longer than end_quiet_minutes between active minutes ends one
        per_minute = per_minute.with_columns(
            ((pl.col("minute").diff().over("day", "address") > quiet).fill_null(False).cum_sum().over("day", "address")).alias(
                "session"
            )
        )
        out = []
        for row in fired.sort("day", "address").iter_rows(named=True):
            mine = per_minute.filter((pl.col("day") == row["day"]) & (pl.col("address") == row["address"]))
            start = mine["minute"].min()
            fired_at = row["firedAt"]
            session = mine.filter(pl.col("minute") == fired_at)["session"].item()
            last = mine.filter(pl.col("session") == session)["minute"].max()
            day_end = day_start(row["day"]) + timedelta(days=1)
            known_at = min(last + timedelta(minutes=1) + quiet, day_end)
            end = last + timedelta(minutes=1) if ctx.data_end >= known_at else None
            stop = end or ctx.data_end
            count = int(mine.filter(pl.col("minute") < stop)["calls"].sum())
            window_start = max(ctx.data_start, day_start(row["day"]) - timedelta(days=cfg.history_days))
            if row["learning"]:
                window_start, window_end = ctx.data_start, ctx.learning_end  # leave-one-out history
            else:
                window_end = day_start(row["day"])
            model = self._model(row)
            end_model = None
            if end is not None:  # the dimensions over the whole incident (the Start's stay causal)
                scored = scored_by_rule[bool(row["learning"])]
                last = (scored.filter((pl.col("day") == row["day"]) & (pl.col("address") == row["address"])
                                      & (pl.col("minute") < end)).sort("minute").tail(1))
                end_model = self._model(last.row(0, named=True)) if last.height else model
            out.append(
                {
                    "insightType": self.insight_type,
                    "insightObject": row["address"],
                    "sourceIpAddress": row["address"],
                    "startTime": start,
                    "endTime": end,
                    # candidates are absent from the window by definition: no calls per day there
                    "baselineAverage": 0.0,
                    "baselineDuration": max(0, int((window_end - window_start).total_seconds() // 60)),
                    "startAverage": float(mine.filter(pl.col("minute") <= fired_at)["calls"].sum()),
                    "insightAverage": float(count),
                    "insightDuration": int((stop - start).total_seconds() // 60),
                    "insightCount": count,
                    "firedAt": fired_at,
                    "model": json.dumps(model, sort_keys=True),
                    "endModel": None if end_model is None else json.dumps(end_model, sort_keys=True),
                }
            )
        frame = pl.DataFrame(out, schema_overrides={"startTime": UTC_DATETIME, "endTime": UTC_DATETIME, "firedAt": UTC_DATETIME})
        return conform_incidents(frame).sort("startTime", "insightObject")


def day_number_of(ts: datetime) -> int:
    """Whole days since 1970-01-01 of a UTC datetime."""
    return int(ts.timestamp() // 86_400)
