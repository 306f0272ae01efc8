"""The simulated account and its scripted episodes (incidents and benign look-alikes).

:mod:`insights_kit.simulate` draws the account's steady background traffic and writes the
delivery files; this module holds what that traffic is made of:

* the API catalogue (:data:`APIS`, :data:`SERVICES`, :data:`ERROR_MESSAGES`),
* the account (:func:`build_account`): identities, their *channels* (one identity using one
  client from a set of usual addresses), rates and activity patterns,
* :func:`events_frame`, the one way every generator turns numpy arrays into event rows,
* the incident plan (:func:`incident_plan`) and the six incident generators,
* the identity plan (:func:`identity_plan`, its own seed streams) and its four generators
  (privilege escalation, login takeover, new-key abuse, key rate burst: PolicyChange,
  PasswordChange and Ak insights), whose rows carry ``requestParameters`` JSON text,
* the scripted benign look-alikes (nightly jobs, read-only dashboard bursts, the IAM
  release, weekly password changes, an AccessKey rotation).

Every generator returns an *internal* event frame (:data:`FRAME_SCHEMA`): the per-event
fields that vary; everything derived from the API (``serviceName``, ``eventSource``,
``eventRW`` ...) is filled in when the frame is serialised. The ``tag`` column names the
episode a row belongs to, so labels can be measured on the rows actually written.

Examples
--------
>>> account = build_account(seed=7)
>>> account.home_region, len(account.account_id)
('cn-hangzhou', 16)
>>> [slot.scenario for slot in incident_plan(7, max_day=8)][:2]  # doctest: +SKIP
['quiet_recon', 'runaway_automation']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

REGIONS: tuple[str, ...] = ("cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1")
HOME_REGION = "cn-hangzhou"
#: Every human and scheduled job of the account works on Asia/Shanghai (and Singapore) time.
LOCAL_UTC_OFFSET_MINUTES = 8 * 60
#: Incidents start on this day index (0-based) or later: day 0 is the detectors' learning day
#: and days 1-2 give them a baseline.
FIRST_INCIDENT_DAY = 3
MIN_DAYS_FOR_INCIDENTS = 4

# --------------------------------------------------------------------------------------------
# API catalogue
# --------------------------------------------------------------------------------------------

#: service -> (eventSource, apiVersion, isGlobal). ``{region}`` is replaced by acsRegion.
SERVICES: dict[str, tuple[str, str | None, bool]] = {
    "Ecs": ("ecs.aliyuncs.com", "2014-05-26", False),
    "Vpc": ("vpc.aliyuncs.com", "2016-04-28", False),
    "Rds": ("rds.aliyuncs.com", "2014-08-15", False),
    "Slb": ("slb.aliyuncs.com", "2014-05-15", False),
    "Oss": ("oss-{region}.aliyuncs.com", "2019-05-17", False),
    "Kms": ("kms.{region}.aliyuncs.com", "2016-01-20", False),
    "Cms": ("metrics.{region}.aliyuncs.com", "2019-01-01", False),
    "Ess": ("ess.aliyuncs.com", "2014-08-28", False),
    "Actiontrail": ("actiontrail.{region}.aliyuncs.com", "2020-07-06", False),
    "Ram": ("ram.aliyuncs.com", "2015-05-01", True),
    "Sts": ("sts.aliyuncs.com", "2015-04-01", True),
    "AasSub": ("signin.aliyun.com", None, True),
}

#: errorCode -> errorMessage (no quotes or backslashes: lines are built without escaping).
ERROR_MESSAGES: dict[str, str] = {
    "InvalidInstanceId.NotFound": "The specified InstanceId does not exist.",
    "IncorrectInstanceStatus": "The current status of the resource does not support this operation.",
    "Throttling.User": "Request was denied due to user flow control.",
    "NoPermission": "You are not authorized to do this action. You should be authorized by RAM.",
    "InvalidParameter": "The specified parameter is not valid.",
    "InvalidSnapshotId.NotFound": "The specified snapshot does not exist.",
    "OperationConflict": "Request was denied due to conflict with a previous request.",
    "EntityNotExist.User": "The user does not exist.",
}

_READ_ERRORS = (("Throttling.User", 0.002), ("NoPermission", 0.001), ("InvalidParameter", 0.001))
_INSTANCE_ERRORS = (
    ("IncorrectInstanceStatus", 0.012),
    ("InvalidInstanceId.NotFound", 0.008),
    ("OperationConflict", 0.002),
    ("Throttling.User", 0.001),
    ("NoPermission", 0.001),
)
_WRITE_ERRORS = (("InvalidParameter", 0.006), ("Throttling.User", 0.001), ("NoPermission", 0.002))


@dataclass(frozen=True)
class Api:
    """One management API: its service, Read/Write, sensitivity and background error model."""

    name: str
    service: str
    rw: str
    sensitive: bool = False
    errors: tuple[tuple[str, float], ...] = ()


def _apis() -> dict[str, Api]:
    rows: list[Api] = []

    def add(service: str, rw: str, names: str, errors=(), sensitive: bool = False) -> None:
        for name in names.split():
            rows.append(Api(name, service, rw, sensitive, tuple(errors)))

    add("Ecs", "Read", "DescribeInstances DescribeInstanceStatus DescribeInstanceAttribute DescribeDisks "
        "DescribeSecurityGroups DescribeSecurityGroupAttribute DescribeImages DescribeSnapshots "
        "DescribeLaunchTemplates DescribeRegions DescribeKeyPairs DescribeNetworkInterfaces "
        "DescribeInstanceTypes DescribeAutoSnapshotPolicyEx ListTagResources DescribeTags", _READ_ERRORS)
    add("Ecs", "Write", "StartInstance StopInstance RebootInstance ModifyInstanceAttribute ModifyInstanceSpec",
        _INSTANCE_ERRORS)
    add("Ecs", "Write", "RunInstances CreateLaunchTemplateVersion ModifyLaunchTemplateDefaultVersion "
        "AuthorizeSecurityGroup RevokeSecurityGroup CreateSecurityGroup TagResources UntagResources "
        "CreateImage CreateKeyPair ImportKeyPair ResetDisk ModifyDiskAttribute", _WRITE_ERRORS)
    add("Ecs", "Write", "DeleteInstance DeleteInstances", _INSTANCE_ERRORS, sensitive=True)
    add("Ecs", "Write", "CreateSnapshot", (("IncorrectInstanceStatus", 0.004), ("Throttling.User", 0.001)))
    add("Ecs", "Write", "DeleteSnapshot", (("InvalidSnapshotId.NotFound", 0.01),))
    add("Vpc", "Read", "DescribeVpcs DescribeVSwitches DescribeEipAddresses DescribeRouteTableList "
        "DescribeNatGateways DescribeVpnGateways", _READ_ERRORS)
    add("Vpc", "Write", "AllocateEipAddress AssociateEipAddress CreateVSwitch DeleteVSwitch "
        "CreateRouteEntry", _WRITE_ERRORS)
    add("Rds", "Read", "DescribeDBInstances DescribeDBInstanceAttribute DescribeBackups "
        "DescribeDBInstanceIPArrayList DescribeAccounts DescribeDatabases", _READ_ERRORS)
    add("Rds", "Write", "ModifySecurityIps CreateBackup ModifyDBInstanceSpec ResetAccountPassword", _WRITE_ERRORS)
    add("Slb", "Read", "DescribeLoadBalancers DescribeLoadBalancerAttribute DescribeHealthStatus", _READ_ERRORS)
    add("Slb", "Write", "AddBackendServers RemoveBackendServers SetBackendServers", _WRITE_ERRORS)
    add("Oss", "Read", "ListBuckets GetBucketInfo GetBucketAcl GetBucketLogging GetBucketPolicy", _READ_ERRORS)
    add("Oss", "Write", "PutBucketAcl PutBucketLifecycle PutBucket", _WRITE_ERRORS)
    add("Oss", "Write", "DeleteBucket DeleteBucketLogging DeleteBucketPolicy", _WRITE_ERRORS, sensitive=True)
    add("Kms", "Read", "ListKeys DescribeKey ListSecrets GetSecretValue", _READ_ERRORS)
    add("Kms", "Write", "ScheduleKeyDeletion DisableKey", _WRITE_ERRORS, sensitive=True)
    add("Cms", "Read", "DescribeMetricList DescribeMetricLast DescribeAlertHistoryList", _READ_ERRORS)
    add("Cms", "Write", "PutResourceMetricRule", _WRITE_ERRORS)
    add("Ess", "Read", "DescribeScalingGroups DescribeScalingActivities", _READ_ERRORS)
    add("Actiontrail", "Read", "DescribeTrails GetTrailStatus LookupEvents", _READ_ERRORS)
    add("Actiontrail", "Write", "StopLogging UpdateTrail DeleteTrail", _WRITE_ERRORS, sensitive=True)
    add("Ram", "Read", "ListUsers GetUser ListRoles GetRole ListPolicies ListPoliciesForUser "
        "ListAccessKeys ListGroups GetAccountAlias", (("NoPermission", 0.002), ("EntityNotExist.User", 0.002)))
    add("Ram", "Write", "CreateUser UpdateUser CreateAccessKey DeleteAccessKey AttachPolicyToUser "
        "AttachPolicyToRole CreateRole", (("NoPermission", 0.01),), sensitive=True)
    # identity changes: called only by the identity episodes (no background weight table has them)
    add("Ram", "Write", "AttachPolicyToGroup CreatePolicy CreatePolicyVersion SetDefaultPolicyVersion UpdateRole "
        "AddUserToGroup CreateLoginProfile UpdateLoginProfile DeleteLoginProfile ChangePassword UnbindMFADevice "
        "DeleteVirtualMFADevice SetPasswordPolicy", (("NoPermission", 0.01),), sensitive=True)
    add("Sts", "Read", "GetCallerIdentity", ())
    add("Sts", "Write", "AssumeRole", (("NoPermission", 0.003),))
    add("AasSub", "Write", "ConsoleSignin", ())
    return {api.name: api for api in rows}


APIS: dict[str, Api] = _apis()
API_NAMES: list[str] = sorted(APIS)


def api_table(regions: Sequence[str]) -> pl.DataFrame:
    """Per (eventName, acsRegion): the fields derived from the API, for a join at serialisation."""
    rows = []
    for name in API_NAMES:
        api = APIS[name]
        source, version, is_global = SERVICES[api.service]
        for region in regions:
            rows.append(
                (name, region, api.service, source.replace("{region}", region), version, api.rw, is_global, api.sensitive)
            )
    return pl.DataFrame(
        rows,
        schema={
            "eventName": pl.String, "acsRegion": pl.String, "serviceName": pl.String, "eventSource": pl.String,
            "apiVersion": pl.String, "eventRW": pl.String, "isGlobal": pl.Boolean, "sensitive": pl.Boolean,
        },
        orient="row",
    )


def is_global(api_name: str) -> bool:
    return SERVICES[APIS[api_name].service][2]


# --------------------------------------------------------------------------------------------
# Internal event frame
# --------------------------------------------------------------------------------------------

#: Columns every generator produces; ``t`` is epoch seconds (UTC).
FRAME_SCHEMA: dict[str, pl.DataType] = {
    "t": pl.Int64(),
    "eventType": pl.String(),
    "eventName": pl.String(),
    "acsRegion": pl.String(),
    "sourceIpAddress": pl.String(),
    "userAgent": pl.String(),
    "vpcId": pl.String(),
    "idType": pl.String(),
    "principalId": pl.String(),
    "accountId": pl.String(),
    "accessKeyId": pl.String(),
    "userName": pl.String(),
    "errorCode": pl.String(),
    #: JSON *object text* of the call's parameters (null for most rows); written verbatim.
    "requestParameters": pl.String(),
    "tag": pl.String(),
}


@dataclass(frozen=True)
class Pick:
    """A column given as indexes into a small list of values (gathered in Rust, not Python)."""

    values: Sequence[str | None]
    index: np.ndarray


def events_frame(t: np.ndarray, **columns: str | None | Pick | np.ndarray) -> pl.DataFrame:
    """Build an internal event frame from epoch seconds and per-column values.

    Each column is a constant (``str`` or ``None``), a :class:`Pick`, or an array of strings.
    Columns of :data:`FRAME_SCHEMA` left out are null. For global APIs the caller passes
    the home region as ``acsRegion`` (global events are delivered there).

    Examples
    --------
    >>> import numpy as np
    >>> f = events_frame(np.array([60, 120]), eventName=Pick(["GetUser", "ListUsers"], np.array([0, 1])),
    ...                  eventType="ApiCall", acsRegion="cn-hangzhou")
    >>> f["eventName"].to_list(), f["errorCode"].to_list()
    (['GetUser', 'ListUsers'], [None, None])
    """
    n = len(t)
    data: dict[str, pl.Series] = {"t": pl.Series("t", np.asarray(t, dtype=np.int64))}
    for name in FRAME_SCHEMA:
        if name == "t":
            continue
        value = columns.pop(name, None)
        if isinstance(value, Pick):
            series = pl.Series(name, list(value.values), dtype=pl.String).gather(
                pl.Series(np.asarray(value.index, dtype=np.int64))
            )
        elif isinstance(value, np.ndarray):
            series = pl.Series(name, value.astype(str) if value.dtype.kind != "U" else value, dtype=pl.String)
        else:
            series = pl.repeat(value, n, dtype=pl.String, eager=True)
        data[name] = series.alias(name)
    if columns:
        raise TypeError(f"unknown event columns: {sorted(columns)}")
    return pl.DataFrame(data)


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=FRAME_SCHEMA)


def draw_errors(rng: np.random.Generator, api_index: np.ndarray, api_names: Sequence[str], boost: float = 1.0):
    """Background errors: per event, pick an error code from its API's error model (or none).

    Returns an index into ``ERROR_CODES + [None]`` per event, vectorised over events.
    """
    width = max(len(APIS[name].errors) for name in api_names) or 1
    cumulative = np.full((len(api_names), width), -1.0)
    codes = np.full((len(api_names), width), len(ERROR_CODES), dtype=np.int64)
    for row, name in enumerate(api_names):
        probs = np.array([p for _, p in APIS[name].errors]) * boost
        cumulative[row, : len(probs)] = np.cumsum(probs)
        codes[row, : len(probs)] = [ERROR_CODES.index(code) for code, _ in APIS[name].errors]
    u = rng.random(len(api_index))
    below = u[:, None] < cumulative[api_index]
    hit = below.any(axis=1)
    first = below.argmax(axis=1)
    return np.where(hit, codes[api_index, first], len(ERROR_CODES))


ERROR_CODES: list[str] = sorted(ERROR_MESSAGES)
ERROR_PICK_VALUES: list[str | None] = [*ERROR_CODES, None]


# --------------------------------------------------------------------------------------------
# The account
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """A usual source address of a channel; ``first_day`` > 0 makes it new on that day."""

    ip: str
    weight: float
    vpc_id: str | None = None
    first_day: int = 0
    note: str = ""


@dataclass(frozen=True)
class Identity:
    """``userIdentity``: a RAM user (long-term ``LTAI`` key), an assumed role (hourly ``STS.`` keys),
    the root account, or a cloud service (``system``)."""

    type: str
    principal_id: str | None
    user_name: str
    access_key: str | None = None  # LTAI key of a RAM user; None for roles (STS) and consoles
    sts: bool = False


@dataclass(frozen=True)
class Channel:
    """One identity calling through one client: the unit of background traffic.

    ``per_day`` is the expected number of events on an ordinary weekday at scale 1;
    ``pattern`` shapes them over the day (see ``simulate._profile``).
    """

    key: str
    identity: Identity
    event_type: str
    addresses: tuple[Address, ...]
    user_agents: tuple[tuple[str, float], ...]
    pattern: str
    per_day: float
    region_weights: tuple[tuple[str, float], ...]
    apis: tuple[tuple[str, float], ...]
    with_key: bool = True  # console channels carry no accessKeyId
    error_boost: float = 1.0


@dataclass
class Account:
    account_id: str
    home_region: str
    regions: tuple[str, ...]
    channels: dict[str, Channel] = field(default_factory=dict)

    def role_id(self, channel_key: str) -> str:
        return self.channels[channel_key].identity.principal_id.split(":")[0]


UA_PYTHON = "AlibabaCloud (Linux; amd64) Python/3.11.4 Core/2.13.36 python-requests/2.31.0"
UA_PYTHON_OLD = "AlibabaCloud (Linux; x86_64) Python/3.9.18 Core/2.13.3 python-requests/2.27.1"
UA_GO = "AlibabaCloud (linux; amd64) Go/1.21.5 Core/1.62.660 TeaDSL/1"
UA_CLI = "aliyuncli/3.0.180"
UA_CONSOLE = "AliyunConsole"
UA_TERRAFORM = "Terraform/1.6.6 aliyun/1.214.0"
UA_SERVICE = "Jakarta Commons-HttpClient/3.1"

_W = dict  # readability: API -> weight tables below

_HUMAN_CONSOLE_APIS = _W(
    DescribeInstances=20, DescribeInstanceStatus=5, DescribeInstanceAttribute=4, DescribeDisks=6,
    DescribeSecurityGroups=5, DescribeSecurityGroupAttribute=4, DescribeVpcs=4, DescribeVSwitches=4,
    DescribeDBInstances=5, DescribeDBInstanceAttribute=2, DescribeLoadBalancers=4, DescribeImages=3,
    DescribeSnapshots=2, ListTagResources=2, ListBuckets=2, GetBucketInfo=1.5, DescribeMetricList=3,
    DescribeTrails=0.3, ListKeys=0.5,
    StartInstance=0.6, StopInstance=0.5, RebootInstance=0.5, ModifyInstanceAttribute=0.8,
    AuthorizeSecurityGroup=0.5, RevokeSecurityGroup=0.2, CreateSnapshot=0.2, RunInstances=0.2,
    DeleteInstance=0.08, ModifySecurityIps=0.2, PutBucketLifecycle=0.05,
    ListUsers=1, GetUser=0.8, ListPoliciesForUser=0.5, ListRoles=0.5, GetRole=0.3, ListAccessKeys=0.3,
    CreateAccessKey=0.01, AttachPolicyToUser=0.02,
)
_HUMAN_SDK_APIS = _W(
    DescribeInstances=25, DescribeInstanceStatus=6, DescribeInstanceAttribute=6, DescribeDisks=5,
    DescribeSecurityGroups=4, DescribeVpcs=3, DescribeVSwitches=3, DescribeEipAddresses=2, DescribeImages=2,
    DescribeDBInstances=4, DescribeLoadBalancers=3, DescribeMetricList=4, ListTagResources=3, GetBucketInfo=1,
    StartInstance=0.5, StopInstance=0.5, RebootInstance=0.3, ModifyInstanceAttribute=1, TagResources=0.8,
    AuthorizeSecurityGroup=0.3, CreateSnapshot=0.2, RunInstances=0.2, DeleteInstance=0.06,
    GetCallerIdentity=0.5, AssumeRole=0.3, GetUser=0.2,
)
_MONITORING_APIS = _W(
    DescribeInstances=4, DescribeInstanceStatus=4, DescribeDisks=2, DescribeDBInstances=2,
    DescribeLoadBalancers=2, DescribeHealthStatus=2, DescribeEipAddresses=1, DescribeMetricLast=4,
    DescribeMetricList=3, DescribeScalingGroups=1, DescribeNatGateways=0.5,
)
_AUTOMATION_APIS = _W(
    DescribeInstances=30, DescribeInstanceAttribute=15, ListTagResources=20, DescribeSecurityGroups=8,
    DescribeTags=5, TagResources=6, UntagResources=1.5, ModifyInstanceAttribute=3, AuthorizeSecurityGroup=0.6,
    ModifyInstanceSpec=0.2, GetSecretValue=2, GetRole=0.3,
)
_CI_APIS = _W(
    DescribeInstances=25, DescribeImages=10, DescribeLaunchTemplates=5, DescribeLoadBalancerAttribute=8,
    DescribeVSwitches=5, ListTagResources=5, DescribeHealthStatus=5, RunInstances=3,
    ModifyInstanceAttribute=3, CreateLaunchTemplateVersion=2, ModifyLaunchTemplateDefaultVersion=1,
    AddBackendServers=2, RemoveBackendServers=2, TagResources=4, DeleteInstance=0.6, GetCallerIdentity=1,
)
_DASHBOARD_APIS = _W(
    DescribeInstances=5, DescribeInstanceStatus=3, DescribeDisks=2, DescribeSecurityGroups=1,
    DescribeDBInstances=1, DescribeLoadBalancers=1,
)
#: The dashboard's refresh burst: which Describe* calls and in what proportion.
DASHBOARD_BURST_APIS = _W(DescribeInstances=50, DescribeInstanceStatus=20, DescribeDisks=15, DescribeSecurityGroups=10,
                          DescribeLoadBalancers=5)
_ESS_APIS = _W(RunInstances=3, DeleteInstances=1.5, AddBackendServers=3, RemoveBackendServers=1.5,
               DescribeInstances=6, DescribeScalingActivities=2)
_INTERNAL_APIS = _W(DescribeInstanceAttribute=4, DescribeDisks=2, DescribeDBInstanceAttribute=2,
                    DescribeKey=1, CreateBackup=0.3)


def _digits(rng: np.random.Generator, n: int) -> str:
    return str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, n - 1))


_ALNUM = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"))


def random_token(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(_ALNUM, n))


def _addresses(*entries: tuple) -> tuple[Address, ...]:
    return tuple(Address(*entry) for entry in entries)


def build_account(seed: int) -> Account:
    """The account for ``seed``: ids and keys from the seed; actors, addresses and rates fixed.

    Examples
    --------
    >>> a = build_account(3)
    >>> a.channels["bob-cli"].identity.access_key.startswith("LTAI")
    True
    """
    rng = np.random.default_rng([seed, 0])
    account_id = _digits(rng, 16)
    account = Account(account_id, HOME_REGION, REGIONS)

    def user(name: str) -> Identity:
        return Identity("ram-user", _digits(rng, 18), name, "LTAI5t" + random_token(rng, 18))

    def role(role_name: str, session: str) -> Identity:
        role_id = _digits(rng, 18)
        return Identity("assumed-role", f"{role_id}:{session}", f"{role_name}:{session}", None, sts=True)

    vpc_ops, vpc_data = "vpc-bp1" + random_token(rng, 17).lower(), "vpc-uf6" + random_token(rng, 17).lower()
    everywhere = (("cn-hangzhou", 0.45), ("cn-shanghai", 0.25), ("cn-beijing", 0.18), ("ap-southeast-1", 0.12))
    hz_office = _addresses(("115.236.21.14", 3), ("115.236.21.15", 2), ("115.236.21.37", 2), ("115.236.21.58", 1))
    vpn = ("8.219.45.10", 1.0)
    alice, bob, carol, dave, frank = (user(n) for n in ("alice", "bob", "carol", "dave", "frank"))
    root = Identity("root-account", account_id, "root")
    channels = [
        Channel("alice-console", Identity(alice.type, alice.principal_id, alice.user_name), "ConsoleOperation",
                hz_office + _addresses(vpn), ((UA_CONSOLE, 1.0),), "office", 9000,
                (("cn-hangzhou", 0.6), ("cn-shanghai", 0.2), ("cn-beijing", 0.1), ("ap-southeast-1", 0.1)),
                tuple(_HUMAN_CONSOLE_APIS.items()), with_key=False),
        # bob: the colleague who moves to a new desk (new address in the office /24) on a weekday
        Channel("bob-cli", bob, "ApiCall",
                hz_office + _addresses(vpn, ("115.236.21.101", 4.0, None, -1, "colleague at a new desk, same office /24")),
                ((UA_CLI, 1.0),), "office", 7000,
                (("cn-hangzhou", 0.55), ("cn-shanghai", 0.25), ("cn-beijing", 0.2)), tuple(_HUMAN_SDK_APIS.items())),
        Channel("carol-sdk", carol, "ApiCall",
                _addresses(("180.167.10.21", 3), ("180.167.10.22", 1), vpn), ((UA_PYTHON, 0.9), (UA_PYTHON_OLD, 0.1)),
                "office", 8000, (("cn-shanghai", 0.6), ("cn-hangzhou", 0.3), ("cn-beijing", 0.1)),
                tuple(_HUMAN_SDK_APIS.items())),
        Channel("dave-sdk", dave, "ApiCall",
                _addresses(("119.74.33.9", 3), ("119.74.33.41", 1)), ((UA_PYTHON, 1.0),), "office", 3500,
                (("ap-southeast-1", 0.8), ("cn-hangzhou", 0.2)), tuple(_HUMAN_SDK_APIS.items())),
        Channel("dave-console", Identity(dave.type, dave.principal_id, dave.user_name), "ConsoleOperation",
                _addresses(("119.74.33.9", 3), ("119.74.33.41", 1)), ((UA_CONSOLE, 1.0),), "office", 1500,
                (("ap-southeast-1", 0.8), ("cn-hangzhou", 0.2)), tuple(_HUMAN_CONSOLE_APIS.items()), with_key=False),
        Channel("frank-console", Identity(frank.type, frank.principal_id, frank.user_name), "ConsoleOperation",
                _addresses(("222.128.10.9", 3), ("222.128.10.77", 1)), ((UA_CONSOLE, 1.0),), "office", 5000,
                (("cn-beijing", 0.7), ("cn-hangzhou", 0.3)), tuple(_HUMAN_CONSOLE_APIS.items()), with_key=False),
        Channel("root-console", root, "ConsoleOperation", hz_office[:1], ((UA_CONSOLE, 1.0),), "office", 20,
                (("cn-hangzhou", 1.0),), (("DescribeInstances", 6), ("ListUsers", 3)),
                with_key=False),
        Channel("ci-deployer", role("ci-deployer", "gitlab-runner"), "ApiCall",
                _addresses(("47.97.120.5", 2), ("47.97.120.6", 2), ("47.97.120.7", 1),
                           ("47.97.120.19", 2.0, None, -1, "new CI runner in the runners' /24")),
                ((UA_TERRAFORM, 1.0),), "ci", 8000,
                (("cn-hangzhou", 0.55), ("cn-shanghai", 0.3), ("cn-beijing", 0.15)), tuple(_CI_APIS.items())),
        Channel("monitoring", role("cms-exporter", "exporter"), "ApiCall",
                _addresses(("10.20.3.4", 1, vpc_ops), ("10.20.3.5", 1, vpc_ops)), ((UA_GO, 1.0),), "poll", 45000,
                everywhere, tuple(_MONITORING_APIS.items())),
        Channel("ops-automation", role("ops-automation", "reconciler"), "ApiCall",
                _addresses(("10.30.1.12", 2, vpc_ops), ("10.30.1.13", 2, vpc_ops), ("10.30.2.40", 1, vpc_ops),
                           ("10.30.7.88", 1.5, vpc_ops, -1, "new private address in the automation VPC /16")),
                ((UA_PYTHON, 1.0),), "automation", 15000, everywhere, tuple(_AUTOMATION_APIS.items())),
        Channel("grafana-reader", user("grafana-reader"), "ApiCall",
                _addresses(("172.16.8.30", 1, vpc_data)), ((UA_GO, 1.0),), "poll", 3000, everywhere,
                tuple(_DASHBOARD_APIS.items())),
        Channel("backup-job", role("ecs-backup", "nightly"), "ApiCall",
                _addresses(("10.40.0.8", 1, vpc_ops)), ((UA_PYTHON, 1.0),), "none", 0, everywhere, ()),
        Channel("ess-service", Identity("system", None, "ess.aliyuncs.com"), "AliyunServiceEvent",
                _addresses(("ess.aliyuncs.com", 1),), (("ess.aliyuncs.com", 1.0),), "scaling", 2000,
                (("cn-hangzhou", 0.6), ("cn-shanghai", 0.4)), tuple(_ESS_APIS.items()), with_key=False),
        Channel("internal-service", Identity("system", None, "cloudmonitor.aliyuncs.com"), "AliyunServiceEvent",
                _addresses(("Internal", 1),), ((UA_SERVICE, 1.0),), "automation", 1500, everywhere,
                tuple(_INTERNAL_APIS.items()), with_key=False),
    ]
    for channel in channels:
        account.channels[channel.key] = channel
    return account


#: Days (0-based) on which the benign "new address" entries marked ``first_day=-1`` appear:
#: the colleague's new desk, the new automation address, the new CI runner (in that order),
#: each moved to the next weekday when it falls on a weekend (people and CI work weekdays).
NEW_ADDRESS_DAYS = {"bob-cli": 3, "ops-automation": 4, "ci-deployer": 5}


def first_day_of(channel_key: str, address: Address, start_weekday: int) -> int:
    """The day index from which ``address`` is in use (0 for long-known addresses)."""
    if address.first_day >= 0:
        return address.first_day
    day = NEW_ADDRESS_DAYS[channel_key]
    if channel_key != "ops-automation":  # automation runs every day; people and CI on weekdays
        while (start_weekday + day) % 7 >= 5:
            day += 1
    return day


# --------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------

SCENARIOS: tuple[str, ...] = (
    "leaked_key_teardown",
    "permission_probing",
    "quiet_recon",
    "runaway_automation",
    "throttling_storm",
    "trail_tampering",
)

#: Foreign /24s per scenario (checked against the bundled GeoLite2 data: DE, NL, BR/PA/SC, RO/BG/LT);
#: none is near an office, a VPN exit or a CI runner of the account.
FOREIGN_PREFIXES: dict[str, tuple[str, ...]] = {
    "leaked_key_teardown": ("185.220.101", "185.220.102"),
    "permission_probing": ("45.95.147", "89.248.165", "80.82.77"),
    "quiet_recon": ("5.188.86", "45.227.255", "196.251.80"),
    "trail_tampering": ("193.32.162", "212.70.149", "141.98.11"),
}
FOREIGN_USER_AGENTS: dict[str, tuple[str, ...]] = {
    "leaked_key_teardown": ("python-requests/2.28.1",),
    "permission_probing": ("Go-http-client/1.1", "aliyun-cli/3.0.16 (darwin; arm64)"),
    "quiet_recon": ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 curl-impersonate", "aliyun-sdk-js/6.21.0"),
    "trail_tampering": ("aliyun-python-sdk-core/2.13.10 python/3.8.10", "okhttp/4.9.3"),
}
#: Whose credentials each scenario uses (a channel key; its identity and key are reused).
SCENARIO_ACTORS: dict[str, tuple[str, ...]] = {
    "leaked_key_teardown": ("bob-cli", "carol-sdk"),
    "permission_probing": ("dave-sdk", "grafana-reader"),
    "quiet_recon": ("carol-sdk", "bob-cli", "dave-sdk"),
    "runaway_automation": ("ops-automation",),
    "throttling_storm": ("carol-sdk", "dave-sdk"),
    "trail_tampering": ("ci-deployer", "ops-automation"),
}
#: APIs a permission prober tries (regional only, so every denial lands in the probed region).
PROBE_APIS: tuple[str, ...] = tuple(
    name for name in API_NAMES
    if not is_global(name) and APIS[name].service != "AasSub" and name not in ("DescribeInstances",)
)


@dataclass(frozen=True)
class Slot:
    """One planned incident: which scenario, when and where, with whose credentials."""

    index: int
    day: int
    scenario: str
    region: str
    minute: int  # UTC minute of the day the incident starts
    actor: str
    ip: str | None
    user_agent: str | None


def _incident_days(max_day: int) -> list[int]:
    # first round: all six scenarios on days 3..7 (two on day 4); afterwards one every other day
    days = [3, 4, 4, 5, 6, 7]
    day = 9
    while day <= max_day + 2:
        days.append(day)
        day += 2
    return [d for d in days if d <= max_day]


def incident_plan(seed: int, max_day: int) -> list[Slot]:
    """Incidents on days ``FIRST_INCIDENT_DAY..max_day`` for ``seed``.

    The plan of a longer run extends that of a shorter one (slot *i* depends only on the
    seed and *i*), which keeps the prefix property of :func:`insights_kit.simulate.simulate`.
    """
    plan: list[Slot] = []
    used_ips: set[str] = set()
    region_offset = int(np.random.default_rng([seed, 2]).integers(0, len(REGIONS)))
    for index, day in enumerate(_incident_days(max_day)):
        round_no, position = divmod(index, len(SCENARIOS))
        order = np.random.default_rng([seed, 2, round_no]).permutation(len(SCENARIOS))
        scenario = SCENARIOS[order[position]]
        rng = np.random.default_rng([seed, 4, index])
        region = REGIONS[(index + region_offset) % len(REGIONS)]
        # 01:00-17:00Z (09:00-01:00 local) keeps clear of the nightly jobs at 18:00Z and 19:30Z
        minute = int(rng.integers(60, 17 * 60))
        actor = str(rng.choice(SCENARIO_ACTORS[scenario]))
        ip = ua = None
        if scenario in FOREIGN_PREFIXES:
            prefixes = FOREIGN_PREFIXES[scenario]
            while ip is None or ip in used_ips:
                ip = f"{prefixes[int(rng.integers(len(prefixes)))]}.{int(rng.integers(2, 254))}"
            used_ips.add(ip)
            ua = str(rng.choice(FOREIGN_USER_AGENTS[scenario]))
        plan.append(Slot(index, day, scenario, region, minute, actor, ip, ua))
    return plan


@dataclass(frozen=True)
class LabelSpec:
    """A label to measure on the written rows: rows with ``tag`` matching ``match``."""

    key: str
    scenario: str
    expect: str  # "insight" | "none"
    type: str
    region: str
    object: str
    tag: str | None  # None: any row of the region
    #: column -> value, or a tuple of values (any of them)
    match: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    extra: dict[str, str | int] = field(default_factory=dict)
    window: tuple[int, int] | None = None  # (t0, t1) epoch seconds, for window-only labels


def _spread(rng: np.random.Generator, t0: int, seconds: int, n: int) -> np.ndarray:
    return np.sort(t0 + rng.integers(0, max(seconds, 1), n))


def _identity_columns(account: Account, channel: Channel, sts_key: str | None) -> dict[str, str | None]:
    ident = channel.identity
    key = sts_key if ident.sts else (ident.access_key if channel.with_key else None)
    return {
        "idType": ident.type,
        "principalId": ident.principal_id,
        "accountId": None if ident.type == "system" else account.account_id,
        "accessKeyId": key,
        "userName": ident.user_name,
    }


def incident_events(
    slot: Slot, account: Account, day_start: int, sts_key: str | None
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """The rows and labels of one planned incident (``day_start``: epoch seconds of its UTC day)."""
    rng = np.random.default_rng([slot.index, 99, slot.minute])
    channel = account.channels[slot.actor]
    t0 = day_start + slot.minute * 60 + int(rng.integers(0, 60))
    tag = f"inc-{slot.index}"
    ident = _identity_columns(account, channel, sts_key)
    region = slot.region
    scenario = slot.scenario
    labels: list[LabelSpec] = []
    who = f"{channel.identity.user_name} ({channel.identity.type})"

    def usual_source(n: int) -> dict:
        # long-known addresses only: a benign "new address" must not be confounded with an incident
        pool = [a for a in channel.addresses if a.first_day == 0]
        weights = np.array([a.weight for a in pool])
        pick = rng.choice(len(pool), n, p=weights / weights.sum())
        return {
            "sourceIpAddress": Pick([a.ip for a in pool], pick),
            "vpcId": Pick([a.vpc_id for a in pool], pick),
            "userAgent": channel.user_agents[0][0],
        }

    def foreign(n: int) -> dict:
        return {"sourceIpAddress": slot.ip, "vpcId": None, "userAgent": slot.user_agent}

    def ip_label(note: str) -> LabelSpec:
        return LabelSpec(f"{tag}-ip", scenario, "insight", "IpInsight", region, slot.ip, tag,
                         {"sourceIpAddress": slot.ip}, note, {"principalId": channel.identity.principal_id})

    if scenario == "leaked_key_teardown":
        n_kill = int(rng.integers(40, 81))
        n_look, n_snap = int(rng.integers(3, 7)), int(rng.integers(4, 9))
        t_look = _spread(rng, t0, 60, n_look)
        t_kill = _spread(rng, t0 + 60, 270, n_kill)
        t_stop = np.maximum(t_kill - rng.integers(1, 4, n_kill), t0 + 60)
        t_snap = _spread(rng, t0 + 300, 40, n_snap)
        t = np.concatenate([t_look, t_stop, t_kill, t_snap])
        names = np.repeat([0, 1, 2, 3], [n_look, n_kill, n_kill, n_snap])
        frame = events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **ident, **foreign(len(t)),
            eventName=Pick(["DescribeInstances", "StopInstance", "DeleteInstance", "DeleteSnapshot"], names),
        )
        note = f"{who}'s AccessKey used from a never-seen foreign address: {n_kill} StopInstance + DeleteInstance in ~5 min"
        labels += [
            ip_label(note),
            LabelSpec(f"{tag}-delete", scenario, "insight", "ApiCallRateInsight", region, "DeleteInstance", tag,
                      {"eventName": "DeleteInstance"}, note, {"serviceName": "Ecs"}),
            LabelSpec(f"{tag}-stop", scenario, "insight", "ApiCallRateInsight", region, "StopInstance", tag,
                      {"eventName": "StopInstance"}, note + " (the StopInstance half of the teardown)",
                      {"serviceName": "Ecs"}),
        ]
    elif scenario == "permission_probing":
        n_apis = int(rng.integers(40, 61))
        apis = rng.choice(PROBE_APIS, n_apis, replace=False)
        per_api = rng.integers(1, 3, n_apis)
        names = np.repeat(apis, per_api)
        t = _spread(rng, t0, 600, len(names))
        # a few reads succeed (the key is allowed some Describe*), the rest are denied
        allowed = np.array([APIS[n].rw == "Read" and APIS[n].service == "Ecs" for n in names]) & (rng.random(len(names)) < 0.5)
        errors = np.where(allowed, 1, 0)
        frame = events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **ident, **foreign(len(t)),
            eventName=names, errorCode=Pick(["NoPermission", None], errors),
        )
        note = f"stolen key of {who} tries {n_apis} APIs in 10 min from a new foreign address; most are denied"
        labels += [
            LabelSpec(f"{tag}-err", scenario, "insight", "ApiErrorRateInsight", region, "NoPermission", tag,
                      {"errorCode": "NoPermission"}, note, {"errorCode": "NoPermission", "level": "errorCode"}),
            ip_label(note),
        ]
    elif scenario == "quiet_recon":
        reads = ["DescribeInstances", "DescribeRegions", "DescribeVpcs", "DescribeSecurityGroups", "DescribeDBInstances",
                 "ListBuckets", "DescribeTrails", "DescribeKeyPairs", "ListKeys", "DescribeLoadBalancers"]
        n = int(rng.integers(10, 26))
        t = _spread(rng, t0, 3600, n)
        frame = events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **ident, **foreign(n),
            eventName=Pick(reads, rng.integers(0, len(reads), n)),
        )
        labels.append(ip_label(f"{n} quiet reads over an hour by {who} from a new address in a new country, new user agent"))
    elif scenario == "runaway_automation":
        api = str(rng.choice(["TagResources", "ModifyInstanceAttribute"]))
        minutes = int(rng.integers(30, 61))
        rate = int(rng.integers(50, 101))
        counts = rng.poisson(rate, minutes)
        minute_of = np.repeat(np.arange(minutes), counts)
        t = np.sort(t0 - t0 % 60 + minute_of * 60 + rng.integers(0, 60, len(minute_of)))
        frame = events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **ident, **usual_source(len(t)),
            eventName=api, errorCode=Pick(["OperationConflict", None], (rng.random(len(t)) > 0.02).astype(int)),
        )
        labels.append(LabelSpec(f"{tag}-rate", scenario, "insight", "ApiCallRateInsight", region, api, tag,
                                {"eventName": api},
                                f"{who} loops on {api} at ~{rate}/min for {minutes} min from its usual address",
                                {"serviceName": "Ecs"}))
        # 2 % of the loop's calls conflict: an error code new to the region at a call or two a
        # minute for the whole loop is an error-rate change too, so a Start there is true
        conflict = f"the loop's OperationConflict errors (~{rate * 0.02:.1f}/min for {minutes} min)"
        labels += [
            LabelSpec(f"{tag}-err", scenario, "may", "ApiErrorRateInsight", region, "OperationConflict", tag,
                      {"errorCode": "OperationConflict"}, conflict, {"errorCode": "OperationConflict", "level": "errorCode"}),
            LabelSpec(f"{tag}-api-err", scenario, "may", "ApiErrorRateInsight", region, api, tag,
                      {"eventName": api, "errorCode": "OperationConflict"}, conflict,
                      {"serviceName": "Ecs", "errorCode": "OperationConflict", "level": "api"}),
        ]
    elif scenario == "throttling_storm":
        minutes = int(rng.integers(10, 31))
        rate = int(rng.integers(80, 161))
        share = float(rng.uniform(0.4, 0.7))
        counts = rng.poisson(rate, minutes)
        minute_of = np.repeat(np.arange(minutes), counts)
        t = np.sort(t0 - t0 % 60 + minute_of * 60 + rng.integers(0, 60, len(minute_of)))
        throttled = (rng.random(len(t)) >= share).astype(int)
        frame = events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **ident, **usual_source(len(t)),
            eventName="DescribeInstances", errorCode=Pick(["Throttling.User", None], throttled),
        )
        labels.append(LabelSpec(f"{tag}-err", scenario, "insight", "ApiErrorRateInsight", region, "DescribeInstances",
                                tag, {"eventName": "DescribeInstances", "errorCode": "Throttling.User"},
                                f"a script of {who} hammers DescribeInstances at ~{rate}/min for {minutes} min; "
                                f"~{share:.0%} get Throttling.User",
                                {"serviceName": "Ecs", "errorCode": "Throttling.User", "level": "api"}))
    elif scenario == "trail_tampering":
        steps = ["GetTrailStatus", "DescribeTrails", "StopLogging", "UpdateTrail", "DeleteTrail",
                 "ListBuckets", "GetBucketLogging", "DeleteBucketLogging", "DeleteBucket", "DeleteBucket"]
        if rng.random() < 0.5:
            steps += ["DeleteBucketPolicy", "DeleteBucket"]
        t = t0 + np.cumsum(rng.integers(5, 50, len(steps)))
        frame = events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **ident, **foreign(len(t)),
            eventName=np.array(steps),
        )
        note = f"stolen session of {who} stops, rewrites and deletes the trail, then deletes buckets"
        labels += [
            ip_label(note),
            LabelSpec(f"{tag}-trail", scenario, "insight", "TrailConcealmentInsight", region, "Actiontrail", tag,
                      {"eventName": ("StopLogging", "UpdateTrail", "DeleteTrail")}, note,
                      {"serviceName": "Actiontrail"}),
        ]
    else:  # pragma: no cover - SCENARIOS is closed
        raise ValueError(scenario)
    # A user's long-term AccessKey used far above its rate is also an AkInsight: a script's
    # 10-30 minute storm must be found; a five-minute teardown or a ten-minute probe at a few
    # calls a minute may be (the rate rule wants six sustained minutes), so a Start there is
    # true and a miss is not counted. Quiet recon "may" too: in a region where the key was never
    # used, its first call there from a foreign network is the first-use rule's.
    key = ident["accessKeyId"]
    ak_expect = {"throttling_storm": "insight", "leaked_key_teardown": "may", "permission_probing": "may",
                 "quiet_recon": "may"}
    if key is not None and not channel.identity.sts and scenario in ak_expect:
        labels.append(LabelSpec(f"{tag}-ak", scenario, ak_expect[scenario], "AkInsight", region, key, tag,
                                {"accessKeyId": key}, f"{who}'s AccessKey far above its usual rate"))
    return frame, labels


# --------------------------------------------------------------------------------------------
# Scripted benign look-alikes
# --------------------------------------------------------------------------------------------

#: Regions whose disks are snapshotted every night (02:00 local) and pruned at 03:30 local.
BACKUP_REGIONS = ("cn-hangzhou", "cn-shanghai", "cn-beijing")


def nightly_jobs(
    rng: np.random.Generator, account: Account, day: int, day_start: int, sts_keys: dict[int, str]
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """The backup role's nightly CreateSnapshot and cleanup DeleteSnapshot runs, per region."""
    channel = account.channels["backup-job"]
    frames, labels = [], []
    for region in BACKUP_REGIONS:
        for job, api, local_minute, jitter in (("nightly_backup", "CreateSnapshot", 2 * 60, 3),
                                                ("nightly_cleanup", "DeleteSnapshot", 3 * 60 + 30, 2)):
            utc_minute = (local_minute - LOCAL_UTC_OFFSET_MINUTES) % 1440
            start = day_start + utc_minute * 60 + int(rng.integers(-jitter * 60, jitter * 60 + 1))
            n = int(rng.integers(30, 61))
            t = np.concatenate([[start - 20, start - 15], _spread(rng, start, int(rng.integers(120, 241)), n)])
            hour = int((start - day_start) // 3600) % 24
            tag = f"{job}-{region}-{day}"
            frames.append(events_frame(
                t, eventType="ApiCall", acsRegion=region, tag=tag,
                **_identity_columns(account, channel, sts_keys[hour]),
                sourceIpAddress=channel.addresses[0].ip, vpcId=channel.addresses[0].vpc_id,
                userAgent=channel.user_agents[0][0],
                eventName=Pick(["DescribeDisks" if api == "CreateSnapshot" else "DescribeSnapshots", api],
                               np.r_[[0, 0], np.ones(n, dtype=int)]),
                errorCode=Pick(ERROR_PICK_VALUES, draw_errors(rng, np.zeros(len(t), dtype=int), [api])),
            ))
            if day >= 1:  # day 0 is learning only
                labels.append(LabelSpec(tag, job, "none", "ApiCallRateInsight", region, api, tag, {"eventName": api},
                                        f"scheduled {api} job ({n} calls) at {local_minute // 60:02d}:"
                                        f"{local_minute % 60:02d} local every night"))
    return pl.concat(frames), labels


def dashboard_burst(
    rng: np.random.Generator, account: Account, day: int, day_start: int, weekday: int
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """On weekdays from day 1: a dashboard refresh of 300-800 Describe* calls in a few minutes."""
    if day < 1 or weekday >= 5:
        return empty_frame(), []
    channel = account.channels["grafana-reader"]
    region = REGIONS[day % len(REGIONS)]
    minute = int(rng.integers(2 * 60, 9 * 60))  # 10:00-17:00 local
    n = int(rng.integers(300, 801))
    t = _spread(rng, day_start + minute * 60, int(rng.integers(120, 301)), n)
    apis = list(DASHBOARD_BURST_APIS)
    weights = np.array(list(DASHBOARD_BURST_APIS.values()), dtype=float)
    tag = f"dashboard-{day}"
    frame = events_frame(
        t, eventType="ApiCall", acsRegion=region, tag=tag,
        **_identity_columns(account, channel, None),
        sourceIpAddress=channel.addresses[0].ip, vpcId=channel.addresses[0].vpc_id, userAgent=channel.user_agents[0][0],
        eventName=Pick(apis, rng.choice(len(apis), n, p=weights / weights.sum())),
    )
    label = LabelSpec(tag, "readonly_burst", "none", "ApiCallRateInsight", region, "DescribeInstances", tag,
                      {"eventName": "DescribeInstances"},
                      f"dashboard refresh: {n} read-only Describe* calls (the busiest is DescribeInstances) "
                      "from the usual reader and address; reads are not counted by ApiCallRateInsight",
                      {"burstEvents": n})
    return frame, [label]


def trail_pipeline(
    rng: np.random.Generator, account: Account, day: int, day_start: int, weekday: int, sts_keys: dict[int, str]
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """On working days the CI role's release applies the trail's Terraform: one UpdateTrail.

    The benign look-alike of trail tampering: same principal, address and user agent every
    release, in the home region.
    """
    if weekday >= 5:
        return empty_frame(), []
    channel = account.channels["ci-deployer"]
    local_minute = int(rng.integers(14 * 60, 16 * 60))
    t = np.array([day_start + (local_minute - LOCAL_UTC_OFFSET_MINUTES) * 60 + int(rng.integers(0, 60))])
    tag = f"trail-pipeline-{day}"
    address = channel.addresses[0]
    frame = events_frame(
        t, eventType="ApiCall", eventName="UpdateTrail", acsRegion=account.home_region, tag=tag,
        sourceIpAddress=address.ip, vpcId=address.vpc_id, userAgent=channel.user_agents[0][0],
        **_identity_columns(account, channel, sts_keys[int((t[0] - day_start) // 3600) % 24]),
    )
    label = LabelSpec(tag, "trail_pipeline", "none", "TrailConcealmentInsight", account.home_region, "Actiontrail",
                      tag, {"eventName": "UpdateTrail"},
                      "the CI role's release applies the trail's Terraform (one UpdateTrail, usual address and agent)")
    return frame, [label] if day >= 1 else []


def console_signins(
    rng: np.random.Generator, account: Account, day: int, day_start: int, weekday: int
) -> pl.DataFrame:
    """One ``ConsoleSignin`` per console user per working day (08:15-09:45 local), whatever the scale.

    People sign in once a day, not in proportion to the account's volume; weekends see a
    sign-in one time in five, and the root account signs in about once a week.
    """
    frames = []
    for channel in account.channels.values():
        if channel.event_type != "ConsoleOperation":
            continue
        chance = 0.15 if channel.identity.type == "root-account" else (1.0 if weekday < 5 else 0.2)
        if rng.random() >= chance:
            continue
        local_minute = int(rng.integers(8 * 60 + 15, 9 * 60 + 45))
        t = np.array([day_start + (local_minute - LOCAL_UTC_OFFSET_MINUTES) * 60 + int(rng.integers(0, 60))])
        address = channel.addresses[0]
        frames.append(events_frame(
            t, eventType="ConsoleSignin", eventName="ConsoleSignin", acsRegion=account.home_region,
            sourceIpAddress=address.ip, vpcId=address.vpc_id, userAgent=channel.user_agents[0][0],
            **_identity_columns(account, channel, None),
        ))
    return pl.concat(frames) if frames else empty_frame()


# --------------------------------------------------------------------------------------------
# Identity incidents (PolicyChangeInsight, PasswordChangeInsight, AkInsight)
# --------------------------------------------------------------------------------------------
# A plan of their own (own seed streams), so incident_plan and every existing incident stay
# as they were for a seed.

IDENTITY_SCENARIOS: tuple[str, ...] = (
    "privilege_escalation",
    "login_takeover",
    "new_key_abuse",
    "key_rate_burst",
)
#: Foreign /24s of the identity incidents (bundled GeoLite2: HU, CH, GB, RU, NL, US, RO); in no
#: other table and far from every address of the account.
IDENTITY_PREFIXES: dict[str, tuple[str, ...]] = {
    "privilege_escalation": ("91.219.236", "179.43.128"),
    "login_takeover": ("37.120.198", "194.26.29"),
    "new_key_abuse": ("103.251.167", "92.118.39", "146.70.124"),
}
IDENTITY_USER_AGENTS: dict[str, tuple[str, ...]] = {
    "privilege_escalation": ("aliyun-sdk-go/1.0.7 (windows; amd64)", "curl/8.4.0"),
    "login_takeover": ("PostmanRuntime/7.36.0", "Apache-HttpClient/4.5.13 (Java/11.0.20)"),
    "new_key_abuse": ("aliyun-sdk-nodejs/1.2.0 node/18.17.1", "python-requests/2.31.0 aliyun-openapi/0.3"),
}
#: The user agent an insider's own (long-known) address shows when they act from a new client.
INSIDER_USER_AGENTS: tuple[str, ...] = ("aliyun-cli/3.0.16 (darwin; arm64)", "aliyun-cli/3.0.204 (windows; amd64)")
IDENTITY_ACTORS: dict[str, tuple[str, ...]] = {
    "privilege_escalation": ("bob-cli", "carol-sdk", "dave-sdk"),
    "login_takeover": ("bob-cli", "carol-sdk", "dave-sdk"),
    "new_key_abuse": ("bob-cli", "carol-sdk", "dave-sdk", "grafana-reader"),
    # Not grafana-reader: its key's own pattern holds dashboard refreshes of 100-400 calls a
    # minute, so a scraper at 15-120 a minute is not "many times its usual rate" for that key.
    "key_rate_burst": ("bob-cli", "carol-sdk", "dave-sdk"),
}
#: Share of slots in the foreign variant (the rest: the user's own address, a new client).
FOREIGN_VARIANT_SHARE = 0.6
#: RAM users of every account (build_account), for the target of a grant or a login profile.
ACCOUNT_USERS: tuple[str, ...] = ("alice", "bob", "carol", "dave", "frank", "grafana-reader")
ACCOUNT_ROLES: tuple[str, ...] = ("ci-deployer", "cms-exporter", "ops-automation", "ecs-backup")
ADMIN_POLICIES: tuple[str, ...] = ("AdministratorAccess", "AliyunRAMFullAccess", "AliyunECSFullAccess")
POLICY_CHANGE_APIS: tuple[str, ...] = (
    "AttachPolicyToUser", "CreatePolicyVersion", "SetDefaultPolicyVersion", "AddUserToGroup", "UpdateRole",
)
PASSWORD_CHANGE_APIS: tuple[str, ...] = ("CreateLoginProfile", "UpdateLoginProfile", "UnbindMFADevice")
_ESCALATION_READS = ("ListUsers", "GetUser", "ListPolicies", "ListPoliciesForUser", "ListRoles")
_TAKEOVER_READS = ("GetUser", "ListUsers")
_ABUSE_READS = ("DescribeInstances", "DescribeRegions", "DescribeVpcs", "ListBuckets", "GetBucketInfo",
                "DescribeDBInstances")
_ABUSE_WRITES = ("CreateKeyPair", "AuthorizeSecurityGroup")


def request_parameters(**params: object) -> str:
    """JSON object text for the ``requestParameters`` column (compact, sorted keys).

    >>> request_parameters(UserName="bob", PolicyType="System")
    '{"PolicyType":"System","UserName":"bob"}'
    """
    return json.dumps(params, separators=(",", ":"), sort_keys=True)


def _policy_document(actions: Sequence[str] | str, resource: Sequence[str] | str) -> str:
    # RAM sends the document as a string-valued parameter
    return json.dumps({"Version": "1", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]},
                      separators=(",", ":"))


@dataclass(frozen=True)
class IdentitySlot:
    """One planned identity incident: scenario, when, where, whose credentials, which variant."""

    index: int
    day: int
    scenario: str
    region: str
    minute: int  # UTC minute of the day the incident starts
    actor: str
    variant: str  # "foreign" | "insider" | "created" | "preexisting" | "usual"
    ip: str | None
    user_agent: str | None


def _identity_days(max_day: int) -> list[int]:
    # first round: the four scenarios on days 3..6; afterwards one every other day (8, 10 ...)
    days = [FIRST_INCIDENT_DAY + i for i in range(len(IDENTITY_SCENARIOS))]
    day = days[-1] + 2
    while day <= max_day:
        days.append(day)
        day += 2
    return [d for d in days if d <= max_day]


def identity_plan(seed: int, max_day: int, account: Account | None = None) -> list[IdentitySlot]:
    """Identity incidents on days ``FIRST_INCIDENT_DAY..max_day`` for ``seed`` (prefix property).

    Examples
    --------
    >>> sorted({s.scenario for s in identity_plan(7, max_day=6)}) == sorted(IDENTITY_SCENARIOS)
    True
    """
    account = account or build_account(seed)
    plan: list[IdentitySlot] = []
    used_ips: set[str] = set()
    for index, day in enumerate(_identity_days(max_day)):
        round_no, position = divmod(index, len(IDENTITY_SCENARIOS))
        order = np.random.default_rng([seed, 10, 0, round_no]).permutation(len(IDENTITY_SCENARIOS))
        scenario = IDENTITY_SCENARIOS[order[position]]
        rng = np.random.default_rng([seed, 10, 1, index])
        minute = int(rng.integers(60, 17 * 60))  # 01:00-17:00Z, clear of the nightly jobs
        actor = str(rng.choice(IDENTITY_ACTORS[scenario]))
        region, ip, ua = account.home_region, None, None
        if scenario in ("privilege_escalation", "login_takeover"):
            variant = "foreign" if rng.random() < FOREIGN_VARIANT_SHARE else "insider"
            if variant == "insider":
                ua = str(rng.choice(INSIDER_USER_AGENTS))
        elif scenario == "new_key_abuse":
            variant = "created" if rng.random() < 0.5 else "preexisting"
            region = REGIONS[int(rng.integers(len(REGIONS)))]
        else:  # key_rate_burst: a region the channel normally uses
            variant = "usual"
            names, weights = zip(*account.channels[actor].region_weights, strict=True)
            w = np.array(weights)
            region = names[int(rng.choice(len(names), p=w / w.sum()))]
        if scenario in IDENTITY_PREFIXES and variant != "insider":
            prefixes = IDENTITY_PREFIXES[scenario]
            while ip is None or ip in used_ips:
                ip = f"{prefixes[int(rng.integers(len(prefixes)))]}.{int(rng.integers(2, 254))}"
            used_ips.add(ip)
            ua = str(rng.choice(IDENTITY_USER_AGENTS[scenario]))
        plan.append(IdentitySlot(index, day, scenario, region, minute, actor, variant, ip, ua))
    return plan


def identity_events(slot: IdentitySlot, account: Account, day_start: int) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """The rows and labels of one planned identity incident."""
    rng = np.random.default_rng([slot.index, 97, slot.minute])
    channel = account.channels[slot.actor]
    t0 = day_start + slot.minute * 60 + int(rng.integers(0, 60))
    tag = f"id-{slot.index}"
    ident = _identity_columns(account, channel, None)
    home, region, scenario = account.home_region, slot.region, slot.scenario
    user = channel.identity.user_name
    who = f"{user} ({channel.identity.type})"
    known = [a for a in channel.addresses if a.first_day == 0]  # long-known addresses only
    weights = np.array([a.weight for a in known])
    frames: list[pl.DataFrame] = []
    labels: list[LabelSpec] = []

    def source(n: int) -> dict:
        if slot.ip is not None:
            return {"sourceIpAddress": slot.ip, "vpcId": None, "userAgent": slot.user_agent}
        pick = rng.choice(len(known), n, p=weights / weights.sum())
        return {"sourceIpAddress": Pick([a.ip for a in known], pick), "vpcId": Pick([a.vpc_id for a in known], pick),
                "userAgent": slot.user_agent or channel.user_agents[0][0]}

    def ip_label(label_region: str, note: str) -> LabelSpec:
        # "may": a handful of calls from a new address is the quiet-stranger class that
        # IpInsight does not yet find reliably; these incidents are the new types' to find.
        return LabelSpec(f"{tag}-ip", scenario, "may", "IpInsight", label_region, slot.ip, tag,
                         {"sourceIpAddress": slot.ip}, note, {"principalId": channel.identity.principal_id})

    def others() -> list[str]:
        return [u for u in ACCOUNT_USERS if u != user]

    def reads_then_changes(reads: Sequence[str], n_reads: int, names: list[str], params: list[str], span: int):
        t_reads = _spread(rng, t0, int(rng.integers(60, 301)), n_reads)
        t_first = int(t_reads[-1]) + int(rng.integers(10, 121))
        t_changes = t_first + np.sort(np.r_[0, rng.integers(0, span * 60 + 1, len(names) - 1)])
        t = np.concatenate([t_reads, t_changes])
        frames.append(events_frame(
            t, eventType="ApiCall", acsRegion=home, tag=tag, **ident, **source(len(t)),
            eventName=np.array([*(reads[i] for i in rng.integers(0, len(reads), n_reads)), *names]),
            requestParameters=Pick([None, *params], np.r_[np.zeros(n_reads, dtype=int), np.arange(1, len(params) + 1)]),
        ))

    variant_note = (f"from a never-seen foreign address ({slot.ip})" if slot.ip
                    else f"from {user}'s usual address but a client {user} never used ({slot.user_agent})")
    if scenario == "privilege_escalation":
        n_reads, changes, span = int(rng.integers(3, 13)), int(rng.integers(1, 7)), int(rng.integers(1, 61))
        admin_first = bool(rng.random() < 0.5)
        names, params = [], []
        version = int(rng.integers(2, 9))
        outside = _digits(rng, 16)
        for i in range(changes):
            kind = "AttachPolicyToUser" if (i == 0 and admin_first) else str(rng.choice(POLICY_CHANGE_APIS))
            target = user if rng.random() < 0.5 else str(rng.choice(others()))
            if kind == "AttachPolicyToUser":
                policy = "AdministratorAccess" if (i == 0 and admin_first) else str(rng.choice(ADMIN_POLICIES))
                p = request_parameters(PolicyType="System", PolicyName=policy,
                                       UserName=user if (i == 0 and admin_first) else target)
            elif kind == "CreatePolicyVersion":
                p = request_parameters(PolicyName="ops-custom", PolicyDocument=_policy_document("*", "*"),
                                       SetAsDefault="true")
            elif kind == "SetDefaultPolicyVersion":
                p = request_parameters(PolicyName="ops-custom", VersionId=f"v{version}")
            elif kind == "AddUserToGroup":
                p = request_parameters(GroupName="admins", UserName=target)
            else:  # UpdateRole: let an outside account assume one of the account's roles
                trust = json.dumps({"Version": "1", "Statement": [{
                    "Action": "sts:AssumeRole", "Effect": "Allow",
                    "Principal": {"RAM": [f"acs:ram::{outside}:root"]}}]}, separators=(",", ":"))
                p = request_parameters(RoleName=str(rng.choice(ACCOUNT_ROLES)), NewAssumeRolePolicyDocument=trust)
            names.append(kind)
            params.append(p)
        reads_then_changes(_ESCALATION_READS, n_reads, names, params, span)
        admin = any('"PolicyName":"AdministratorAccess"' in p for p in params)
        note = (f"{who}'s AccessKey {variant_note}: {n_reads} RAM reads, then {changes} permission change(s) "
                f"in {span} min" + (" including an AdministratorAccess grant" if admin else ""))
        extra = {"changes": changes, "span_minutes": span, "variant": slot.variant, "reads": n_reads,
                 "first_change": names[0], "admin_grant": admin, "principalId": channel.identity.principal_id}
        labels.append(LabelSpec(f"{tag}-policy", scenario, "insight", "PolicyChangeInsight", home, "Ram", tag,
                                {"eventName": tuple(sorted(set(names)))}, note, extra))
        if slot.ip:
            labels.append(ip_label(home, note))
    elif scenario == "login_takeover":
        n_reads, changes, span = int(rng.integers(2, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 31))
        victim = str(rng.choice(others()))
        unbind = bool(rng.random() < 0.5)
        names = [str(rng.choice(["CreateLoginProfile", "UpdateLoginProfile"])) for _ in range(changes)]
        params = [request_parameters(UserName=victim, PasswordResetRequired=False) for _ in range(changes)]
        if unbind:
            names.append("UnbindMFADevice")
            params.append(request_parameters(UserName=victim))
        reads_then_changes(_TAKEOVER_READS, n_reads, names, params, span)
        note = (f"{who}'s AccessKey {variant_note}: sets {victim}'s console password {changes} time(s) in {span} min"
                + (" and unbinds the MFA device" if unbind else ""))
        extra = {"changes": changes, "span_minutes": span, "variant": slot.variant, "reads": n_reads,
                 "target_user": victim, "mfa_unbound": unbind, "principalId": channel.identity.principal_id}
        labels.append(LabelSpec(f"{tag}-password", scenario, "insight", "PasswordChangeInsight", home, "Ram", tag,
                                {"eventName": tuple(sorted(set(names)))}, note, extra))
        if slot.ip:
            labels.append(ip_label(home, note))
    elif scenario == "new_key_abuse":
        new_key = "LTAI5t" + random_token(rng, 18)
        calls, span = int(rng.integers(5, 41)), int(rng.integers(5, 61))
        n_writes = min(int(rng.integers(0, 4)), calls - 1)
        t_use = t0
        if slot.variant == "created":  # the stolen existing key mints a new one (Ram: home region)
            frames.append(events_frame(
                np.array([t0]), eventType="ApiCall", eventName="CreateAccessKey", acsRegion=home, tag=tag,
                **ident, **source(1), requestParameters=request_parameters(UserName=user),
            ))
            t_use = t0 + int(rng.integers(60, 601))
        t = t_use + np.sort(np.r_[0, rng.integers(0, span * 60 + 1, calls - 1)])
        names = np.array([*(_ABUSE_READS[i] for i in rng.integers(0, len(_ABUSE_READS), calls - n_writes)),
                          *(_ABUSE_WRITES[i] for i in rng.integers(0, len(_ABUSE_WRITES), n_writes))])
        names = np.r_[names[:1], rng.permutation(names[1:])]
        frames.append(events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **(ident | {"accessKeyId": new_key}), **source(calls),
            eventName=names,
        ))
        origin = ("created minutes before by the owner's stolen key" if slot.variant == "created"
                  else "never seen before")
        note = (f"a new AccessKey of {who} ({origin}) makes {calls} calls ({n_writes} writes) in {span} min "
                f"from a foreign address ({slot.ip}) with a new client")
        extra = {"calls": calls, "span_minutes": span, "writes": n_writes, "variant": slot.variant,
                 "principalId": channel.identity.principal_id}
        labels += [
            LabelSpec(f"{tag}-ak", scenario, "insight", "AkInsight", region, new_key, tag,
                      {"accessKeyId": new_key}, note, extra),
            ip_label(region, note),
        ]
        if slot.variant == "created" and region != home:  # the CreateAccessKey call came from there too
            labels.append(LabelSpec(f"{tag}-ip-home", scenario, "may", "IpInsight", home, slot.ip, tag,
                                    {"sourceIpAddress": slot.ip, "eventName": "CreateAccessKey"}, note,
                                    {"principalId": channel.identity.principal_id}))
    elif scenario == "key_rate_burst":
        key = channel.identity.access_key
        minutes, rate = int(rng.integers(15, 61)), int(rng.integers(15, 121))
        apis = [(n, w) for n, w in channel.apis if APIS[n].rw == "Read" and not is_global(n)
                and (n.startswith("Describe") or n.startswith("List"))]
        api_names = [n for n, _ in apis]
        w = np.array([w for _, w in apis], dtype=float)
        counts = rng.poisson(rate, minutes)
        minute_of = np.repeat(np.arange(minutes), counts)
        t = np.sort(t0 - t0 % 60 + minute_of * 60 + rng.integers(0, 60, len(minute_of)))
        frames.append(events_frame(
            t, eventType="ApiCall", acsRegion=region, tag=tag, **ident, **source(len(t)),
            eventName=Pick(api_names, rng.choice(len(api_names), len(t), p=w / w.sum())),
        ))
        note = (f"{who}'s long-term AccessKey reads at ~{rate}/min for {minutes} min from its usual address and "
                "client (no errors): a key used far above its usual rate")
        labels.append(LabelSpec(f"{tag}-ak", scenario, "insight", "AkInsight", region, key, tag,
                                {"accessKeyId": key}, note,
                                {"rate": rate, "minutes": minutes, "variant": slot.variant,
                                 "principalId": channel.identity.principal_id}))
    else:  # pragma: no cover - IDENTITY_SCENARIOS is closed
        raise ValueError(scenario)
    return pl.concat(frames), labels


# --------------------------------------------------------------------------------------------
# Identity look-alikes (benign)
# --------------------------------------------------------------------------------------------


def policy_release(
    rng: np.random.Generator, account: Account, day: int, day_start: int, weekday: int, sts_keys: dict[int, str]
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """On working days the CI role's release applies the IAM Terraform: 2-6 non-admin policy changes."""
    if weekday >= 5:
        return empty_frame(), []
    channel = account.channels["ci-deployer"]
    local_minute = int(rng.integers(14 * 60, 16 * 60))
    start = day_start + (local_minute - LOCAL_UTC_OFFSET_MINUTES) * 60 + int(rng.integers(0, 60))
    n = int(rng.integers(2, 7))
    t = start + np.sort(np.r_[0, rng.integers(0, int(rng.integers(120, 301)) + 1, n - 1)])
    document = _policy_document(["ecs:Describe*", "oss:GetObject"], "acs:oss:*:*:app-artifacts/*")
    options = (
        ("CreatePolicyVersion", request_parameters(PolicyName="app-deploy-read", PolicyDocument=document,
                                                   SetAsDefault="true")),
        ("SetDefaultPolicyVersion", request_parameters(PolicyName="app-deploy-read", VersionId=f"v{day % 5 + 2}")),
        ("AttachPolicyToRole", request_parameters(PolicyType="System", PolicyName="AliyunOSSReadOnlyAccess",
                                                  RoleName="app-server")),
        ("AttachPolicyToRole", request_parameters(PolicyType="Custom", PolicyName="app-deploy-read",
                                                  RoleName="app-server")),
    )
    pick = rng.integers(0, len(options), n)
    tag = f"policy-release-{day}"
    address = channel.addresses[0]
    frame = events_frame(
        t, eventType="ApiCall", acsRegion=account.home_region, tag=tag,
        sourceIpAddress=address.ip, vpcId=address.vpc_id, userAgent=channel.user_agents[0][0],
        eventName=Pick([name for name, _ in options], pick), requestParameters=Pick([p for _, p in options], pick),
        **_identity_columns(account, channel, sts_keys[int((start - day_start) // 3600) % 24]),
    )
    names = tuple(sorted({options[i][0] for i in pick}))
    label = LabelSpec(tag, "policy_release", "none", "PolicyChangeInsight", account.home_region, "Ram", tag,
                      {"eventName": names},
                      f"the CI role's release applies the IAM Terraform: {n} non-admin policy changes in a few "
                      "minutes, usual address and agent", {"changes": n})
    return frame, [label] if day >= 1 else []


#: Console users who change their own password every week (from day 2, every 7th day).
PASSWORD_ROTATION_USERS: tuple[str, ...] = ("alice-console", "frank-console")


def password_rotation(
    rng: np.random.Generator, account: Account, day: int, day_start: int
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """On days 2, 9, 16 ... two console users change their own password in the morning."""
    if day < 2 or (day - 2) % 7:
        return empty_frame(), []
    frames, labels = [], []
    for key in PASSWORD_ROTATION_USERS:
        channel = account.channels[key]
        local_minute = int(rng.integers(8 * 60 + 30, 10 * 60))
        t = np.array([day_start + (local_minute - LOCAL_UTC_OFFSET_MINUTES) * 60 + int(rng.integers(0, 60))])
        address = channel.addresses[0]
        tag = f"password-rotation-{key}-{day}"
        user = channel.identity.user_name
        frames.append(events_frame(
            t, eventType=channel.event_type, eventName="ChangePassword", acsRegion=account.home_region, tag=tag,
            sourceIpAddress=address.ip, vpcId=address.vpc_id, userAgent=channel.user_agents[0][0],
            requestParameters=request_parameters(UserName=user), **_identity_columns(account, channel, None),
        ))
        labels.append(LabelSpec(tag, "password_rotation", "none", "PasswordChangeInsight", account.home_region, "Ram",
                                tag, {"eventName": "ChangePassword"},
                                f"{user} changes their own console password (weekly), usual address, console",
                                {"principalId": channel.identity.principal_id}))
    return pl.concat(frames), labels


def key_rotation_day(start_weekday: int) -> int:
    """The first weekday with day index >= 4: grafana-reader's AccessKey is rotated then."""
    day = 4
    while (start_weekday + day) % 7 >= 5:
        day += 1
    return day


def key_rotation(
    rng: np.random.Generator, account: Account, day: int, day_start: int, start_weekday: int,
    sts_keys: dict[int, str],
) -> tuple[pl.DataFrame, list[LabelSpec]]:
    """Automation rotates grafana-reader's key: CreateAccessKey, the new key's usual traffic, DeleteAccessKey."""
    if day != key_rotation_day(start_weekday):
        return empty_frame(), []
    ops, reader = account.channels["ops-automation"], account.channels["grafana-reader"]
    old_key, new_key = reader.identity.access_key, "LTAI5t" + random_token(rng, 18)
    local_minute = int(rng.integers(10 * 60, 16 * 60))
    t_create = day_start + (local_minute - LOCAL_UTC_OFFSET_MINUTES) * 60 + int(rng.integers(0, 60))
    tag = f"key-rotation-{day}"
    ops_address = ops.addresses[0]

    def ops_call(t: int, name: str, params: str) -> pl.DataFrame:
        return events_frame(
            np.array([t]), eventType="ApiCall", eventName=name, acsRegion=account.home_region, tag=tag,
            sourceIpAddress=ops_address.ip, vpcId=ops_address.vpc_id, userAgent=ops.user_agents[0][0],
            requestParameters=params, **_identity_columns(account, ops, sts_keys[int((t - day_start) // 3600) % 24]),
        )

    n = int(rng.integers(60, 181))
    t_use = t_create + int(rng.integers(60, 181))
    t = np.sort(t_use + np.r_[0, rng.integers(0, 3600, n - 1)])
    series = [(api, r, wa * wr) for api, wa in reader.apis for r, wr in reader.region_weights]
    w = np.array([s[2] for s in series])
    pick = rng.choice(len(series), n, p=w / w.sum())
    address = reader.addresses[0]
    use = events_frame(
        t, eventType="ApiCall", tag=tag, eventName=Pick([s[0] for s in series], pick),
        acsRegion=Pick([s[1] for s in series], pick), sourceIpAddress=address.ip, vpcId=address.vpc_id,
        userAgent=reader.user_agents[0][0], **(_identity_columns(account, reader, None) | {"accessKeyId": new_key}),
    )
    t_delete = int(t[-1]) + int(rng.integers(60, 301))
    frame = pl.concat([
        ops_call(t_create, "CreateAccessKey", request_parameters(UserName="grafana-reader")),
        use,
        ops_call(t_delete, "DeleteAccessKey", request_parameters(UserName="grafana-reader", UserAccessKeyId=old_key)),
    ])
    labels = [
        LabelSpec(f"{tag}-{r}", "key_rotation", "none", "AkInsight", r, new_key, tag, {"accessKeyId": new_key},
                  "automation rotates grafana-reader's AccessKey: the new key is used from the reader's usual "
                  "address and client for its usual calls", {"principalId": reader.identity.principal_id})
        for r in sorted({s[1] for s in series})
    ]
    return frame, labels
