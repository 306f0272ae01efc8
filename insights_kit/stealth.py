"""Graded "stealth" incidents: how weak can an attack be and still be found?

The six incidents of :func:`insights_kit.scenarios.incident_plan` are loud on purpose. This
plan draws quieter ones whose **intensity** (calls, rate, error share) is spread over a range
on every seed, so an evaluation can draw detection power against intensity
(:func:`insights_kit.evaluate.score`'s ``by_intensity``). Seven kinds, in rotation:

=====================  ==============================================================  ============================
kind                   what happens (intensity drawn)                                  labels
=====================  ==============================================================  ============================
``quiet_stranger``     a user's long-term key reads from a never-seen foreign          IpInsight; AkInsight may
                       network (new ASN, new country): 3-25 calls over 20-90 min,
                       the usual or a new user agent
``low_rate_writes``    a user, usual address, one write API idle at that hour,         ApiCallRateInsight
                       0.5-4 calls/min (log-uniform) for 45-180 min, at night local
``companion_bursts``   a leaked key, foreign address: two simultaneous write           ApiCallRateInsight x 2;
                       bursts, 20-80/min and 2-10/min, for 5-20 min                    IpInsight; AkInsight may
``multi_api_probe``    a stolen key, foreign address: 3-15 denials on each of 2-5      ApiErrorRateInsight per API;
                       RAM APIs within 5-30 min                                        errorCode one may; IpInsight
``slow_runaway``       an automation role, usual address, loops on one write API at    ApiCallRateInsight
                       3-30/min (log-uniform) for 30-120 min
``mixed_burst``        40-120 calls in 5-15 min (RunInstances, CreateAccessKey,        IpInsight, TrailConcealment;
                       AttachPolicyToUser, DeleteTrail) from a never-seen address,     Policy, rate, Ak may
                       by a principal new to the region
``error_creep``        a role, usual address, busy read API: 2-8 calls/min (about      ApiErrorRateInsight (api);
                       its usual rate at scale 1) whose NoPermission share ramps       errorCode one may
                       from 3 % to 15-50 % over 60-240 min
=====================  ==============================================================  ============================

Every label's ``extra["intensity"]`` holds ``calls`` (rows the label matches),
``duration_minutes``, ``rate_per_minute`` (calls / duration) and, where meaningful,
``baseline_per_minute`` and ``error_share``. ``baseline_per_minute`` is **measured**: the
background rows (no tag: not a scripted episode) of the same (eventName, acsRegion) series in
the whole UTC hours the incident touches, per minute, on the same simulated day (see
:func:`measure_baseline`); it is None when no background is given.

``mixed_burst``'s instance creation is ``RunInstances`` (the catalogue's create call; it has no
``CreateInstance``). The benign new-address look-alikes asked for beside these (a colleague at a new desk in a
known /24, a role at a new private VPC address) already exist: the ``first_day=-1`` addresses
of :func:`insights_kit.scenarios.build_account`, labelled ``new_address_same_subnet`` and
``new_private_vpc_address`` by the simulator.

Times: every incident runs between 19:45Z and 23:55Z (03:45-07:55 local), after the nightly
jobs (18:00Z, 19:30Z) and the other plans' incidents (started 01:00-17:00Z), and ends before
the UTC day does. The plan has its own seed streams (``[seed, 20, ...]``), so the other plans'
events are the same with or without it, and a longer run's plan extends a shorter one's.

Examples
--------
>>> from insights_kit import scenarios as sc
>>> account = sc.build_account(7)
>>> plan = stealth_plan(7, max_day=9, account=account)
>>> sorted({s.kind for s in plan}) == sorted(KINDS), plan[0].day
(True, 3)
>>> frame, labels = stealth_events(plan[0], account, 1741651200, None)
>>> bool(frame.height) and all("intensity" in spec.extra for spec in labels)
True
"""

from __future__ import annotations

import dataclasses

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from insights_kit import scenarios as sc
from insights_kit.scenarios import Account, LabelSpec, Pick, events_frame

KINDS: tuple[str, ...] = (
    "quiet_stranger", "low_rate_writes", "companion_bursts", "multi_api_probe", "slow_runaway", "mixed_burst",
    "error_creep",
)
#: Foreign /24s (bundled GeoLite2: AT/SE/AR, DE/PL/FR, US/IN/RO, RU/AE/NL); in no other table.
#: The quiet strangers' countries and ASNs are used by no other incident either: "new ASN,
#: new country" holds for them whatever ran before.
STEALTH_PREFIXES: dict[str, tuple[str, ...]] = {
    "quiet_stranger": ("109.70.100", "171.25.193", "200.58.101"),
    "companion_bursts": ("116.202.120", "95.214.55", "51.15.43"),
    "multi_api_probe": ("104.248.50", "139.59.38", "185.100.87"),
    "mixed_burst": ("45.134.26", "31.184.198", "190.2.131"),
}
STEALTH_USER_AGENTS: dict[str, tuple[str, ...]] = {
    "quiet_stranger": ("aliyun-sdk-java/4.6.3 (Linux; amd64) Java/17.0.9", "aliyun-cli/3.0.190 (linux; amd64)"),
    "companion_bursts": ("Go-http-client/2.0", "aliyun-sdk-php/1.8.1"),
    "multi_api_probe": ("python-httpx/0.25.2", "aliyun-openapi-go/1.4.2"),
    "mixed_burst": ("Terraform/1.3.1 aliyun/1.180.0", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"),
}
ACTORS: dict[str, tuple[str, ...]] = {
    "quiet_stranger": ("bob-cli", "carol-sdk", "dave-sdk"),
    "low_rate_writes": ("bob-cli", "carol-sdk", "dave-sdk"),
    "companion_bursts": ("bob-cli", "carol-sdk", "dave-sdk"),
    "multi_api_probe": ("bob-cli", "carol-sdk", "dave-sdk", "grafana-reader"),
    "slow_runaway": ("ops-automation", "ci-deployer"),
    "mixed_burst": ("bob-cli", "carol-sdk", "dave-sdk"),
    "error_creep": ("monitoring", "ops-automation"),
}
#: Writes no background channel makes at night (people's APIs only; none of the nightly jobs').
IDLE_NIGHT_WRITES: tuple[str, ...] = (
    "RebootInstance", "StartInstance", "ModifyDiskAttribute", "RevokeSecurityGroup", "ModifySecurityIps",
)
#: (large, small) write pairs of a leaked key's simultaneous bursts.
COMPANION_PAIRS: tuple[tuple[str, str], ...] = (
    ("RunInstances", "AuthorizeSecurityGroup"), ("CreateKeyPair", "ImportKeyPair"),
    ("AllocateEipAddress", "AssociateEipAddress"), ("CreateSecurityGroup", "AuthorizeSecurityGroup"),
)
PROBE_RAM_APIS: tuple[str, ...] = (
    "ListUsers", "GetUser", "ListRoles", "ListPolicies", "ListAccessKeys", "ListGroups", "GetAccountAlias",
    "CreateUser", "CreateAccessKey", "AttachPolicyToUser",
)
_QUIET_READS = ("DescribeInstances", "DescribeRegions", "DescribeVpcs", "DescribeSecurityGroups", "DescribeDisks",
                "GetBucketInfo", "ListBuckets", "ListTagResources", "DescribeKeyPairs")
_RUNAWAY_WRITES = ("TagResources", "ModifyInstanceAttribute", "UntagResources", "AuthorizeSecurityGroup")
#: error_creep: the share of denials at the start of the ramp.
CREEP_START_SHARE = 0.03
#: error_creep's calls a minute (log-uniform): about the usual rate of the account's busiest
#: reads at scale 1 at that hour (DescribeInstances in cn-hangzhou: ~3-4 a minute). Incidents
#: keep their absolute size at every scale, like the other plans' incidents.
CREEP_RATES = (2.0, 8.0)
#: First and last UTC minute an incident may use (03:45-07:55 local).
FIRST_MINUTE, LAST_MINUTE = 19 * 60 + 45, 23 * 60 + 55
#: low_rate_writes must be over by 23:00Z (07:00 local: people start work after that).
NIGHT_END_MINUTE = 23 * 60
#: Kinds whose rate labels allow a Start up to SUSTAINED_TOLERANCE_MINUTES after the onset.
SUSTAINED_KINDS: tuple[str, ...] = ("low_rate_writes", "error_creep", "multi_api_probe")
SUSTAINED_TOLERANCE_MINUTES = 30


@dataclass(frozen=True)
class StealthSlot:
    """One planned stealth incident; ``params`` holds its drawn intensity (see :data:`KINDS`)."""

    seed: int
    index: int
    day: int
    kind: str
    region: str
    minute: int  # UTC minute of the day the incident starts
    actor: str
    ip: str | None
    user_agent: str | None
    params: dict = field(default_factory=dict, hash=False)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _principal_regions(account: Account, actor: str) -> set[str]:
    """Every region where the actor's principal (any of its channels) normally calls."""
    principal = account.channels[actor].identity.principal_id
    return {r for ch in account.channels.values() if ch.identity.principal_id == principal
            for r, _ in ch.region_weights}


def _draw(rng: np.random.Generator, kind: str, account: Account, actor: str) -> tuple[str, dict]:
    """The region and intensity parameters of one slot."""
    channel = account.channels[actor]
    names, weights = zip(*channel.region_weights, strict=True)
    w = np.array(weights)
    usual_region = names[int(rng.choice(len(names), p=w / w.sum()))]
    if kind == "quiet_stranger":
        return usual_region, {"calls": int(rng.integers(3, 26)), "duration": int(rng.integers(20, 91)),
                              "new_agent": bool(rng.random() < 0.5)}
    if kind == "low_rate_writes":
        return usual_region, {"rate": _log_uniform(rng, 0.5, 4.0), "duration": int(rng.integers(45, 181)),
                              "api": str(rng.choice(IDLE_NIGHT_WRITES))}
    if kind == "companion_bursts":
        pair = COMPANION_PAIRS[int(rng.integers(len(COMPANION_PAIRS)))]
        return sc.REGIONS[int(rng.integers(len(sc.REGIONS)))], {
            "rate": _log_uniform(rng, 20.0, 80.0), "small_rate": _log_uniform(rng, 2.0, 10.0),
            "duration": int(rng.integers(5, 21)), "api": pair[0], "small_api": pair[1]}
    if kind == "multi_api_probe":
        k = int(rng.integers(2, 6))
        return account.home_region, {"apis": [str(a) for a in rng.choice(PROBE_RAM_APIS, k, replace=False)],
                                     "denials": [int(m) for m in rng.integers(3, 16, k)],
                                     "duration": int(rng.integers(5, 31))}
    if kind == "slow_runaway":
        own = [a for a, _ in channel.apis if a in _RUNAWAY_WRITES]
        return usual_region, {"rate": _log_uniform(rng, 3.0, 30.0), "duration": int(rng.integers(30, 121)),
                              "api": str(rng.choice(own))}
    if kind == "mixed_burst":
        new = sorted(set(sc.REGIONS) - _principal_regions(account, actor))
        return str(rng.choice(new)), {"calls": int(rng.integers(40, 121)), "duration": int(rng.integers(5, 16))}
    if kind == "error_creep":
        reads = sorted((w, a) for a, w in channel.apis if sc.APIS[a].rw == "Read" and not sc.is_global(a))
        busy = [a for _, a in reads[-3:]]  # the role's three busiest regional reads
        return usual_region, {"share": float(rng.uniform(0.15, 0.5)), "duration": int(rng.integers(60, 241)),
                              "api": str(rng.choice(busy)), "rate": _log_uniform(rng, *CREEP_RATES)}
    raise ValueError(kind)  # pragma: no cover - KINDS is closed


def _fresh_ip(rng: np.random.Generator, prefixes: Sequence[str], used: set[str]) -> str:
    """A host in one of ``prefixes`` (/24s) that no earlier slot of the plan drew; added to ``used``."""
    while True:
        ip = f"{prefixes[int(rng.integers(len(prefixes)))]}.{int(rng.integers(2, 254))}"
        if ip not in used:
            used.add(ip)
            return ip


def stealth_plan(seed: int, max_day: int, account: Account | None = None) -> list[StealthSlot]:
    """One stealth incident a day on days ``FIRST_INCIDENT_DAY..max_day`` (prefix property).

    Slot *i* depends only on the seed and *i* (and the addresses taken by slots before it),
    so a longer run's plan starts with the shorter one's. Kinds rotate: every round of
    ``len(KINDS)`` days holds each kind once, in an order drawn per round.

    Examples
    --------
    >>> plan = stealth_plan(3, max_day=12)
    >>> [s.day for s in plan][:3], plan == stealth_plan(3, 20)[: len(plan)]
    ([3, 4, 5], True)
    """
    account = account or sc.build_account(seed)
    plan: list[StealthSlot] = []
    used_ips: set[str] = set()
    for index, day in enumerate(range(sc.FIRST_INCIDENT_DAY, max_day + 1)):
        round_no, position = divmod(index, len(KINDS))
        kind = KINDS[np.random.default_rng([seed, 20, 0, round_no]).permutation(len(KINDS))[position]]
        rng = np.random.default_rng([seed, 20, 1, index])
        actor = str(rng.choice(ACTORS[kind]))
        region, params = _draw(rng, kind, account, actor)
        last = NIGHT_END_MINUTE if kind == "low_rate_writes" else LAST_MINUTE
        minute = int(rng.integers(FIRST_MINUTE, last - params["duration"]))
        ip = ua = None
        if kind in STEALTH_PREFIXES:
            ip = _fresh_ip(rng, STEALTH_PREFIXES[kind], used_ips)
            ua = str(rng.choice(STEALTH_USER_AGENTS[kind]))
            if kind == "quiet_stranger" and not params["new_agent"]:
                ua = account.channels[actor].user_agents[0][0]
        plan.append(StealthSlot(seed, index, day, kind, region, minute, actor, ip, ua, params))
    return plan


def measure_baseline(background: pl.DataFrame | None, api: str, region: str, t_first: int, t_last: int) -> float | None:
    """Background calls per minute of ``(api, region)`` in the whole UTC hours ``t_first..t_last`` touch.

    Rows with a ``tag`` (scripted episodes, incidents) are not background and are left out.

    Examples
    --------
    >>> frame = events_frame(np.array([3600, 3700, 9000]), eventName="GetUser", acsRegion="cn-hangzhou")
    >>> measure_baseline(frame, "GetUser", "cn-hangzhou", 3650, 3660)  # two calls in hour 1
    0.033333
    """
    if background is None:
        return None
    h0, h1 = t_first - t_first % 3600, t_last - t_last % 3600 + 3600
    n = background.filter(
        pl.col("tag").is_null() & (pl.col("eventName") == api) & (pl.col("acsRegion") == region)
        & pl.col("t").is_between(h0, h1, closed="left")
    ).height
    return round(n / ((h1 - h0) / 60), 6)


def _per_minute(rng: np.random.Generator, t0: int, rate: float, minutes: int) -> np.ndarray:
    """Poisson(``rate``) calls in each of ``minutes`` minutes from ``t0``'s minute, sorted."""
    counts = rng.poisson(rate, minutes)
    counts[0] = max(counts[0], 1)  # the incident starts with a call at its planned minute
    minute_of = np.repeat(np.arange(minutes), counts)
    return np.sort(t0 - t0 % 60 + minute_of * 60 + rng.integers(0, 60, len(minute_of)))


def _intensity(calls: int, minutes: float, baseline: float | None = None, **more) -> dict:
    minutes = float(minutes)
    out = {"calls": int(calls), "duration_minutes": round(minutes, 3),
           "rate_per_minute": round(float(calls) / max(minutes, 1e-9), 4)}
    if baseline is not None:
        out["baseline_per_minute"] = baseline
    out.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in more.items()})
    return out


def stealth_events(
    slot: StealthSlot, account: Account, day_start: int, sts_key: str | Sequence[str] | None,
    background: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """The rows and labels of one stealth incident.

    Parameters
    ----------
    slot, account
        From :func:`stealth_plan` and :func:`insights_kit.scenarios.build_account`.
    day_start
        Epoch seconds of the slot's UTC day.
    sts_key
        For a role: one STS key for every row, or its 24 hourly keys of the day (each row
        then carries the key of its hour). Ignored for users.
    background
        The day's other rows (internal frame), for ``baseline_per_minute`` (None: unknown).
        The rows themselves do not depend on it.

    Examples
    --------
    >>> from insights_kit import scenarios as sc
    >>> account = sc.build_account(1)
    >>> slot = next(s for s in stealth_plan(1, 12, account) if s.kind == "low_rate_writes")
    >>> frame, (label,) = stealth_events(slot, account, 0, None)
    >>> label.type, label.extra["intensity"]["calls"] == frame.height
    ('ApiCallRateInsight', True)
    """
    rng = np.random.default_rng([slot.seed, 20, 2, slot.index])
    channel = account.channels[slot.actor]
    ident = channel.identity
    p, kind, region, home = slot.params, slot.kind, slot.region, account.home_region
    t0 = day_start + slot.minute * 60 + int(rng.integers(0, 60))
    seconds = p["duration"] * 60
    tag, who = f"st-{slot.index}", f"{ident.user_name} ({ident.type})"
    key = ident.access_key if channel.with_key and not ident.sts else None
    principal = {"principalId": ident.principal_id}

    def who_columns(t: np.ndarray) -> dict:
        cols = sc._identity_columns(account, channel, None)
        if ident.sts and sts_key is not None:
            cols["accessKeyId"] = sts_key if isinstance(sts_key, str) else Pick(list(sts_key), (t - day_start) // 3600)
        return cols

    def usual(n: int) -> dict:
        pool = [a for a in channel.addresses if a.first_day == 0]  # never a benign "new address"
        w = np.array([a.weight for a in pool])
        pick = rng.choice(len(pool), n, p=w / w.sum())
        return {"sourceIpAddress": Pick([a.ip for a in pool], pick), "vpcId": Pick([a.vpc_id for a in pool], pick),
                "userAgent": channel.user_agents[0][0]}

    def foreign(n: int) -> dict:
        return {"sourceIpAddress": slot.ip, "vpcId": None, "userAgent": slot.user_agent}

    def rows(t: np.ndarray, source: dict, names: str | np.ndarray, *, where: str = region, errors=None,
             params=None) -> pl.DataFrame:
        names = np.broadcast_to(np.asarray(names, dtype=str), len(t))
        if errors is None:  # the API's background error model (a real key's calls fail now and then)
            api_names, index = np.unique(names, return_inverse=True)
            errors = Pick(sc.ERROR_PICK_VALUES, sc.draw_errors(rng, index, list(api_names)))
        return events_frame(t, eventType="ApiCall", acsRegion=where, tag=tag, **who_columns(t), **source,
                            eventName=np.ascontiguousarray(names), errorCode=errors, requestParameters=params)

    def label(suffix: str, expect: str, type_: str, obj: str, match: dict, note: str, intensity: dict,
              where: str = region, **extra) -> LabelSpec:
        return LabelSpec(f"{tag}-{suffix}", kind, expect, type_, where, obj, tag, match, note,
                         {**extra, **principal, "intensity": intensity})

    def ak_label(t: np.ndarray, note: str) -> list[LabelSpec]:
        return [label("ak", "may", "AkInsight", key, {"accessKeyId": key}, note,
                      _intensity(len(t), p["duration"]))] if key else []

    labels: list[LabelSpec] = []
    if kind == "quiet_stranger":
        n = p["calls"]
        t = t0 + np.sort(np.r_[0, seconds - 1, rng.integers(0, seconds, n - 2)])
        frame = rows(t, foreign(n), np.array(_QUIET_READS)[rng.integers(0, len(_QUIET_READS), n)])
        agent = "a user agent it never used" if p["new_agent"] else "its usual user agent"
        note = (f"{who}'s long-term AccessKey makes {n} quiet reads over {p['duration']} min from a never-seen "
                f"network ({slot.ip}: new ASN, new country) with {agent}")
        labels += [label("ip", "insight", "IpInsight", slot.ip, {"sourceIpAddress": slot.ip}, note,
                         _intensity(n, p["duration"], error_share=float(frame["errorCode"].is_not_null().mean()),
                                    new_agent=p["new_agent"])),
                   *ak_label(t, note)]
    elif kind in ("low_rate_writes", "slow_runaway"):
        rate, api = p["rate"], p["api"]
        if kind == "low_rate_writes":  # a script with a sleep: evenly spaced, at most ceil(rate)+1 a minute
            n = max(int(round(rate * p["duration"])), 1)
            t = t0 + ((np.arange(n) + rng.uniform(0, 1, n)) * 60 / rate).astype(np.int64)
        else:
            t = _per_minute(rng, t0, rate, p["duration"])
        frame = rows(t, usual(len(t)), api)
        base = measure_baseline(background, api, region, int(t[0]), int(t[-1]))
        what = ("at night from its usual address, on a write API idle at that hour" if kind == "low_rate_writes"
                else "from its usual address (an automation loop)")
        note = f"{who} calls {api} at ~{rate:.2f}/min for {p['duration']} min {what}: {len(t)} calls"
        labels.append(label("rate", "insight", "ApiCallRateInsight", api, {"eventName": api}, note,
                            _intensity(len(t), p["duration"], base), serviceName=sc.APIS[api].service))
    elif kind == "companion_bursts":
        t_big = _per_minute(rng, t0, p["rate"], p["duration"])
        t_small = _per_minute(rng, t0, p["small_rate"], p["duration"])
        t = np.concatenate([t_big, t_small])
        frame = rows(t, foreign(len(t)), np.repeat([p["api"], p["small_api"]], [len(t_big), len(t_small)]))
        frame = frame.sort("t", maintain_order=True)
        note = (f"{who}'s leaked key, from a foreign address ({slot.ip}), runs two bursts at once for {p['duration']} "
                f"min: {p['api']} at ~{p['rate']:.1f}/min ({len(t_big)} calls) and {p['small_api']} at "
                f"~{p['small_rate']:.1f}/min ({len(t_small)} calls)")
        for suffix, api, times in (("rate", p["api"], t_big), ("rate-small", p["small_api"], t_small)):
            base = measure_baseline(background, api, region, int(times.min()), int(times.max()))
            labels.append(label(suffix, "insight", "ApiCallRateInsight", api, {"eventName": api}, note,
                                _intensity(len(times), p["duration"], base), serviceName=sc.APIS[api].service))
        labels += [label("ip", "insight", "IpInsight", slot.ip, {"sourceIpAddress": slot.ip}, note,
                         _intensity(len(t), p["duration"])), *ak_label(t, note)]
    elif kind == "multi_api_probe":
        names = np.repeat(p["apis"], p["denials"])
        t = _spread(rng, t0, seconds, len(names))
        order = rng.permutation(len(names))  # the prober interleaves its APIs
        frame = rows(t, foreign(len(t)), names[order], where=home, errors="NoPermission")
        named = names[order]
        listing = ", ".join(f"{a} x{m}" for a, m in zip(p["apis"], p["denials"], strict=True))
        note = (f"stolen key of {who} collects NoPermission from a foreign address ({slot.ip}) on "
                f"{len(p['apis'])} RAM APIs in {p['duration']} min: {listing}")
        for api, m in zip(p["apis"], p["denials"], strict=True):
            at = t[named == api]
            span = max(float(at.max() - at.min()) / 60, 1 / 60)
            labels.append(label(f"err-{api}", "insight", "ApiErrorRateInsight", api, {"eventName": api}, note,
                                _intensity(m, span, error_share=1.0, errors=m), where=home,
                                serviceName="Ram", errorCode="NoPermission", level="api"))
        labels += [
            label("err", "may", "ApiErrorRateInsight", "NoPermission", {"errorCode": "NoPermission"}, note,
                  _intensity(len(t), p["duration"], error_share=1.0, errors=len(t)), where=home,
                  errorCode="NoPermission", level="errorCode"),
            label("ip", "insight", "IpInsight", slot.ip, {"sourceIpAddress": slot.ip}, note,
                  _intensity(len(t), p["duration"], error_share=1.0), where=home),
            *ak_label(t, note),
        ]
    elif kind == "mixed_burst":
        frame, labels = _mixed_burst(slot, rng, t0, rows, label, ak_label, background, home, ident.user_name, who)
    elif kind == "error_creep":
        api, share, rate = p["api"], p["share"], p["rate"]
        t = _per_minute(rng, t0, rate, p["duration"])
        base = measure_baseline(background, api, region, int(t[0]), int(t[-1]))
        # the denial share rises linearly over the incident's minutes
        progress = ((t - t[0]) / max(seconds - 60, 1)).clip(0, 1)
        denied = rng.random(len(t)) < CREEP_START_SHARE + (share - CREEP_START_SHARE) * progress
        frame = rows(t, usual(len(t)), api, errors=Pick(["NoPermission", None], (~denied).astype(int)))
        note = (f"{who} keeps calling {api} from its usual address at ~{rate:.1f}/min while the share denied "
                f"(NoPermission) creeps from {CREEP_START_SHARE:.0%} to {share:.0%} over {p['duration']} min: "
                f"{int(denied.sum())} of {len(t)} calls fail")
        labels += [
            label("err", "insight", "ApiErrorRateInsight", api, {"eventName": api}, note,
                  _intensity(len(t), p["duration"], base, error_share=share, errors=int(denied.sum()),
                             start_error_share=CREEP_START_SHARE),
                  serviceName=sc.APIS[api].service, errorCode="NoPermission", level="api"),
            label("err-code", "may", "ApiErrorRateInsight", "NoPermission", {"errorCode": "NoPermission"}, note,
                  _intensity(int(denied.sum()), p["duration"], error_share=1.0, errors=int(denied.sum())),
                  errorCode="NoPermission", level="errorCode"),
        ]
    else:  # pragma: no cover - KINDS is closed
        raise ValueError(kind)
    if kind in SUSTAINED_KINDS:
        # a sustained low-rate shift is judged by the issue's own target: its Start within 30 minutes
        labels = [dataclasses.replace(lab, extra={**lab.extra, "tolerance_minutes": SUSTAINED_TOLERANCE_MINUTES})
                  if lab.type in ("ApiCallRateInsight", "ApiErrorRateInsight") else lab for lab in labels]
    if not any(lab.type == "ApiErrorRateInsight" and lab.region == region for lab in labels):
        # The renderer draws the API's usual errors on the incident's own calls too: hundreds of
        # extra calls bring their InvalidParameter or IncorrectInstanceStatus with them, a true
        # error-rate change, so an error Start in the incident's region and window is not false.
        labels.append(label("side-errors", "may", "ApiErrorRateInsight", "*", {}, "the usual errors of the "
                            "incident's own calls, drawn by the simulator",
                            _intensity(int((frame["acsRegion"] == region).sum()), p["duration"])))
    return frame, labels


def _spread(rng: np.random.Generator, t0: int, seconds: int, n: int) -> np.ndarray:
    """``n`` sorted times in ``[t0, t0 + seconds)``, the first at ``t0`` and the last near the end."""
    if n < 2:
        return np.full(n, t0, dtype=np.int64)
    return t0 + np.sort(np.r_[0, max(seconds - 1, 0), rng.integers(0, max(seconds, 1), n - 2)])


def _mixed_burst(slot, rng, t0, rows, label, ak_label, background, home, user, who):
    """mixed_burst: RunInstances in a region new to the principal, RAM changes (home) and DeleteTrail."""
    p, region = slot.params, slot.region
    n_key, n_attach, n_trail = (int(x) for x in rng.integers(1, [4, 4, 3]))
    n_run = p["calls"] - n_key - n_attach - n_trail
    seconds = p["duration"] * 60
    # RunInstances opens and closes the burst, so the address's first and last call are in `region`
    t_run = _spread(rng, t0, seconds, n_run)
    t_other = np.sort(rng.integers(t0 + 1, t0 + seconds - 1, n_key + n_attach + n_trail))
    kind_of = rng.permutation(np.repeat([0, 1, 2], [n_key, n_attach, n_trail]))
    ram_t, trail_t = t_other[kind_of < 2], t_other[kind_of == 2]
    ram_names = np.where(kind_of[kind_of < 2] == 0, "CreateAccessKey", "AttachPolicyToUser")
    params = np.where(ram_names == "CreateAccessKey", sc.request_parameters(UserName=user),
                      sc.request_parameters(PolicyType="System", PolicyName="AdministratorAccess", UserName=user))
    source = {"sourceIpAddress": slot.ip, "vpcId": None, "userAgent": slot.user_agent}
    frame = pl.concat([
        rows(np.concatenate([t_run, trail_t]), source, np.repeat(["RunInstances", "DeleteTrail"], [n_run, n_trail])),
        rows(ram_t, source, ram_names, where=home, params=params),
    ]).sort("t", maintain_order=True)
    in_region = n_run + n_trail
    note = (f"{who}, in a region it never used ({region}), from a never-seen address ({slot.ip}): {p['calls']} calls "
            f"in {p['duration']} min: {n_run} RunInstances, {n_trail} DeleteTrail, {n_key} CreateAccessKey and "
            f"{n_attach} AttachPolicyToUser (AdministratorAccess)")
    base = measure_baseline(background, "RunInstances", region, int(t_run[0]), int(t_run[-1]))
    return frame, [
        label("ip", "insight", "IpInsight", slot.ip, {"sourceIpAddress": slot.ip}, note,
              _intensity(in_region, p["duration"])),
        label("ip-home", "may", "IpInsight", slot.ip, {"sourceIpAddress": slot.ip}, note,
              _intensity(len(ram_t), p["duration"]), where=home),
        label("trail", "insight", "TrailConcealmentInsight", "Actiontrail", {"eventName": "DeleteTrail"}, note,
              _intensity(n_trail, p["duration"]), serviceName="Actiontrail"),
        label("policy", "may", "PolicyChangeInsight", "Ram", {"eventName": "AttachPolicyToUser"}, note,
              _intensity(n_attach, p["duration"]), where=home),
        label("rate", "may", "ApiCallRateInsight", "RunInstances", {"eventName": "RunInstances"}, note,
              _intensity(n_run, p["duration"], base), serviceName="Ecs"),
        # the RAM calls are global: they land in the home region, where a rate Start is true too
        *[label(f"rate-{name}", "may", "ApiCallRateInsight", name, {"eventName": name}, note,
                _intensity(int((ram_names == name).sum()), p["duration"],
                           measure_baseline(background, name, home, int(ram_t[0]), int(ram_t[-1]))),
                where=home, serviceName="Ram")
          for name in sorted(set(ram_names.tolist()))],
        *ak_label(np.concatenate([t_run, trail_t]), note),
    ]
