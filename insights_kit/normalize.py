"""Raw delivery records -> canonical events (vectorised), plus record validation.

The readers in :mod:`insights_kit.readers` parse every delivery shape into one *raw* frame
with the columns of :data:`RAW_SCHEMA` (ActionTrail and CloudTrail key spellings side by
side, every scalar read as ``String``). This module turns such a frame into
:data:`insights_kit.schema.EVENT_SCHEMA` rows and says, per row, why a record cannot be
loaded. Nothing here loops over events in Python.

Scalars are read as ``String`` on purpose: Polars coerces numbers and booleans into a
String column silently, so a wrong-typed ``isGlobal`` or ``eventTime`` survives the read
and is caught here by validating the text, instead of failing the whole file.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from insights_kit.schema import EVENT_SCHEMA, REGION_PATTERN, UTC_DATETIME

_S = pl.String()

#: ``userIdentity`` sub-fields we keep (ActionTrail + CloudTrail ``arn``).
IDENTITY_FIELDS = ("type", "principalId", "accountId", "userName", "accessKeyId", "arn")

_IDENTITY = pl.Struct({name: _S for name in IDENTITY_FIELDS})

#: ``requestParameters`` sub-fields read (both vendors' spellings; all else is skipped): the
#: policy a permission change grants, the trust policy a role change sets and the user a
#: credential change acts on. A value that is not a string (a policy document sent as an
#: object) is read as its JSON text.
REQUEST_FIELDS = (
    "policyArn", "policyName", "policyDocument", "userName", "assumeRolePolicyDocument",  # CloudTrail (IAM)
    "PolicyName", "PolicyDocument", "UserName", "AssumeRolePolicyDocument",  # ActionTrail (RAM)
    "NewAssumeRolePolicyDocument",  # RAM UpdateRole
)  # fmt: skip
_REQUEST = pl.Struct({name: _S for name in REQUEST_FIELDS})
_ATTRIBUTES = pl.Struct({"SensitiveAction": _S})

#: Scalar top-level keys read from a record (both vendors' spellings).
SCALAR_FIELDS = (
    "eventId", "eventID", "eventTime", "@timestamp", "eventVersion", "eventType",
    "eventCategory", "eventRW", "readOnly", "eventName", "eventSource", "serviceName",
    "acsRegion", "awsRegion", "isGlobal", "recipientAccountId", "requestId", "requestID",
    "sourceIpAddress", "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "vpcId",
)  # fmt: skip

#: Explicit schema of one raw record. Only keys listed here are read; the rest of a
#: record (requestParameters, responseElements, ...) is skipped by the JSON reader.
RAW_SCHEMA: dict[str, pl.DataType] = {
    **{name: _S for name in SCALAR_FIELDS},
    "userIdentity": _IDENTITY,
    "eventAttributes": _ATTRIBUTES,
    "requestParameters": _REQUEST,
}
RAW_STRUCT = pl.Struct(RAW_SCHEMA)

#: Schema of one SLS log line: the ``event`` JSON string plus the flattened index keys.
SLS_SCHEMA: dict[str, pl.DataType] = {
    "__topic__": _S,
    "event": _S,  # an object here is coerced to its JSON text, which decodes the same way
    **{f"event.{name}": _S for name in SCALAR_FIELDS},
    **{f"event.userIdentity.{name}": _S for name in IDENTITY_FIELDS},
    "event.eventAttributes": _S,  # JSON text or object, read as text
    "event.eventAttributes.SensitiveAction": _S,
}

#: Schema of a JSON document: CloudTrail ``{"Records": [...]}`` or a LookupEvents page.
DOCUMENT_SCHEMA: dict[str, pl.DataType] = {
    "Records": pl.List(RAW_STRUCT),
    "Events": pl.List(RAW_STRUCT),
    "RequestId": _S,
    "NextToken": _S,
}

#: CloudTrail event sources whose us-east-1 events are global (docs/design.md, Decision).
GLOBAL_SERVICES = ("iam", "sts", "organizations", "cloudfront", "route53", "signin")

# ISO-8601 as CloudTrail and ActionTrail write it: UTC "Z" (the common case, parsed on its
# own fast path) or a numeric offset, with or without a fraction of up to 9 digits.
_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_OFFSET_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%z"

#: Events outside [MIN_EVENT_TIME, MAX_EVENT_TIME) are quarantined: neither cloud logged
#: before 2000, and a year-9999 time would overflow every window computed from it.
MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=timezone.utc)

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # no leading zeros
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H = "[0-9a-fA-F]{1,4}"
# The eight compressed/uncompressed IPv6 forms, without look-arounds (Rust regex has none).
_IPV6 = "|".join(
    [
        rf"({_H}:){{7}}{_H}",
        rf"({_H}:){{1,7}}:",
        rf"({_H}:){{1,6}}:{_H}",
        rf"({_H}:){{1,5}}(:{_H}){{1,2}}",
        rf"({_H}:){{1,4}}(:{_H}){{1,3}}",
        rf"({_H}:){{1,3}}(:{_H}){{1,4}}",
        rf"({_H}:){{1,2}}(:{_H}){{1,5}}",
        rf"{_H}:(:{_H}){{1,6}}",
        rf":((:{_H}){{1,7}}|:)",
    ]
)


def is_ip_address(col: pl.Expr) -> pl.Expr:
    """True where `col` is a syntactically valid IPv4 or IPv6 literal.

    IPv4 octets must be 0-255 without leading zeros (so LogLicker-scrambled
    ``075.050.255.67`` is not an address); IPv6 accepts every ``::`` form and an
    embedded IPv4 tail (``::ffff:192.0.2.1``). Zone ids (``%eth0``) are rejected.
    Null stays null.

    Parameters
    ----------
    col
        A String expression.

    Examples
    --------
    >>> df = pl.DataFrame({"ip": ["10.0.0.1", "075.050.255.67", "::1", "Internal"]})
    >>> df.select(is_ip_address(pl.col("ip")))["ip"].to_list()
    [True, False, True, False]
    """
    # An embedded IPv4 tail counts as two 16-bit groups: swap it for "0:0" and reuse
    # the pure-hex IPv6 pattern, which keeps the group arithmetic in one place.
    v6 = col.str.replace(rf"(^|:){_IPV4}$", "${1}0:0")
    return col.str.contains(rf"^{_IPV4}$") | (
        col.str.contains(":") & v6.str.contains(rf"^({_IPV6})$")
    )


def _bool_text(col: pl.Expr) -> pl.Expr:
    """'true'/'false' (any case) -> Boolean, anything else -> null."""
    low = col.str.to_lowercase()
    return pl.when(low == "true").then(True).when(low == "false").then(False)


def _either(ct: pl.Expr, cloudtrail: pl.Expr, actiontrail: pl.Expr) -> pl.Expr:
    return pl.when(ct).then(cloudtrail).otherwise(actiontrail)


#: A policy document that allows every action on every resource ("Action": "*" or "*:*",
#: "Resource": "*"), in a JSON text that may itself be escaped inside another string.
_ALLOW_ALL_ACTION = r'(?i)\\?"action\\?"\s*:\s*\[?\s*\\?"(\*|\*:\*)\\?"'
_ALLOW_ALL_RESOURCE = r'(?i)\\?"resource\\?"\s*:\s*\[?\s*\\?"\*\\?"'


#: Managed policies that are admin rights in all but name: full control of the identity
#: service lets the holder grant itself anything (lower case; matched by name or ARN tail).
ADMIN_POLICY_NAMES = ("administratoraccess", "aliyunramfullaccess", "iamfullaccess")


def grants_admin(request: pl.Expr) -> pl.Expr:
    """True where a request (a ``requestParameters`` struct) grants administrator rights.

    Admin-like means: an admin-equivalent managed policy (:data:`ADMIN_POLICY_NAMES`:
    ``AdministratorAccess``, or full control of RAM/IAM, by ARN or name), or a policy
    document with an allow-all statement (``"Action": "*"`` or ``"*:*"`` and ``"Resource":
    "*"``). Null when the request names no policy; false otherwise. A document whose
    allow-all statement is a Deny also matches: reading policy logic is out of scope, and a
    false "admin" on a permission change costs one look.
    """
    rp = request.struct
    name = pl.coalesce(rp.field("policyName"), rp.field("PolicyName"), rp.field("policyArn").str.extract(r"/([^/]+)$"))
    document = pl.coalesce(rp.field("policyDocument"), rp.field("PolicyDocument"))
    allow_all = document.str.contains(_ALLOW_ALL_ACTION) & document.str.contains(_ALLOW_ALL_RESOURCE)
    admin = name.str.to_lowercase().is_in(ADMIN_POLICY_NAMES).fill_null(False) | allow_all.fill_null(False)
    return pl.when(name.is_not_null() | document.is_not_null()).then(admin)


#: An account named in a trust policy: RAM ``acs:ram::<id>:...``, IAM ``arn:aws:iam::<id>:...``
#: (any partition) or IAM's bare ``"AWS": "<12 digits>"``.
_TRUSTED_ACCOUNT = r'(?:acs:ram::|arn:aws[a-z-]*:iam::)\d+|(?i:\\?"aws\\?"\s*:\s*\[?\s*\\?")\d{12}'
#: A principal of anyone: ``"Principal": "*"`` or ``{"AWS": "*"}`` / ``{"RAM": "*"}``.
_TRUSTS_ANYONE = r'(?i)\\?"(principal|aws|ram)\\?"\s*:\s*\[?\s*\\?"\*\\?"'


def trusts_outside(request: pl.Expr, event_name: pl.Expr, account: pl.Expr) -> pl.Expr:
    """True where a request sets a role trust policy that another account (or anyone) may assume.

    The trust policy is RAM's ``AssumeRolePolicyDocument`` (CreateRole) or
    ``NewAssumeRolePolicyDocument`` (UpdateRole), IAM's ``assumeRolePolicyDocument``
    (CreateRole) or the ``policyDocument`` of UpdateAssumeRolePolicy. *Outside* means it names
    an account other than ``account`` (the event's own) or a wildcard principal. Null when the
    request sets no trust policy (or the own account is unknown); a role trusted by a cloud
    service or by the account itself is false.
    """
    rp = request.struct
    document = pl.coalesce(
        rp.field("NewAssumeRolePolicyDocument"), rp.field("AssumeRolePolicyDocument"),
        rp.field("assumeRolePolicyDocument"),
        pl.when(event_name == "UpdateAssumeRolePolicy").then(rp.field("policyDocument")),
    )  # fmt: skip
    named = document.str.extract_all(_TRUSTED_ACCOUNT).list.eval(pl.element().str.extract(r"(\d+)$"))
    # "Names an account other than its own", as text: every named account wrapped in <...>,
    # the own one removed, something left. Not list.set_difference, which panics in Polars
    # 2.2.0 (list/sets.rs index out of bounds) on some chunkings of the normalised files.
    wrapped = pl.concat_str(pl.lit("<"), named.list.join("><"), pl.lit(">"))
    left = wrapped.str.replace_all(pl.concat_str(pl.lit("<"), account, pl.lit(">")), "", literal=True)
    others = (named.list.len() > 0) & (left != "")
    return pl.when(document.is_not_null() & account.is_not_null()).then(
        others | document.str.contains(_TRUSTS_ANYONE)
    )


def normalize(raw: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Map raw rows (:data:`RAW_SCHEMA` plus a Boolean ``_ct``) to canonical columns.

    ``_ct`` marks rows of CloudTrail files (the mapping of docs/design.md, "Canonical
    events"). The result has the canonical columns except ``sourceFormat``/``sourceFile``,
    plus ``_reason``: null for a loadable record, otherwise one human sentence (the
    first failing check). Other ``_``-prefixed columns of `raw` are passed through.
    All files of a load are normalised in one call, so per-file overhead stays nil.

    Examples
    --------
    >>> one = pl.DataFrame({"eventId": ["a"], "eventTime": ["2025-03-04T08:15:42Z"],
    ...                     "eventName": ["DeleteInstance"], "_ct": [False]})
    >>> raw = pl.concat([pl.DataFrame(schema=RAW_SCHEMA), one], how="diagonal")
    >>> normalize(raw).collect()["_reason"].to_list()
    [None]
    """
    c = pl.col
    ct = c("_ct")
    ident = c("userIdentity").struct
    lf = raw.lazy()
    extra = [n for n in lf.collect_schema().names() if n.startswith("_") and n != "_ct"]
    # otrf/Logstash CloudTrail drops eventTime and keeps "@timestamp": use it (same format).
    time_text = pl.coalesce(c("eventTime"), c("@timestamp"))
    event_time = (
        pl.when(time_text.str.contains(_TIME_PATTERN))
        .then(
            pl.when(time_text.str.ends_with("Z"))
            .then(time_text.str.to_datetime(_TIME_FORMAT, time_unit="us", time_zone="UTC", strict=False))
            .otherwise(time_text.str.to_datetime(_OFFSET_FORMAT, time_unit="us", time_zone="UTC", strict=False))
        )
        .cast(UTC_DATETIME)
    )
    ct_service = c("eventSource").str.extract(r"^([^.]+)", 1)
    ct_region = pl.coalesce(c("awsRegion"), c("acsRegion"))
    read_only = c("readOnly").str.to_lowercase()
    cols = {
        "eventId": _either(ct, pl.coalesce(c("eventID"), c("eventId")), pl.coalesce(c("eventId"), c("eventID"))),
        "eventTime": event_time,
        "eventCategory": _either(ct, c("eventCategory").fill_null("Management"), c("eventCategory")),
        "eventRW": _either(
            ct,
            pl.when(read_only == "true").then(pl.lit("Read")).when(read_only == "false").then(pl.lit("Write")),
            c("eventRW"),
        ),
        "serviceName": _either(ct, ct_service, c("serviceName")),
        "acsRegion": _either(ct, ct_region, pl.coalesce(c("acsRegion"), c("awsRegion"))),
        # CloudTrail has no isGlobal: docs/design.md Decision (global service in us-east-1).
        "isGlobal": _either(
            ct, ct_service.is_in(GLOBAL_SERVICES).fill_null(False) & (ct_region == "us-east-1"), _bool_text(c("isGlobal"))
        ),
        "requestId": pl.coalesce(c("requestId"), c("requestID")),
        "sourceIpAddress": pl.coalesce(c("sourceIpAddress"), c("sourceIPAddress")),
        "sensitiveAction": _bool_text(c("eventAttributes").struct.field("SensitiveAction")),
        "vpcId": c("vpcId"),  # CloudTrail's vpcEndpointId is not a VPC id: left out
        "userIdentityType": ident.field("type"),
        "principalId": ident.field("principalId"),
        "accountId": ident.field("accountId"),
        "userName": ident.field("userName"),
        "accessKeyId": ident.field("accessKeyId"),
        "userIdentityArn": ident.field("arn"),
        "requestUserName": pl.coalesce(
            c("requestParameters").struct.field("userName"), c("requestParameters").struct.field("UserName")
        ),
        "grantsAdmin": grants_admin(c("requestParameters")),
        "trustsOutside": trusts_outside(
            c("requestParameters"), c("eventName"), pl.coalesce(c("recipientAccountId"), ident.field("accountId"))
        ),
    }
    passthrough = ("eventVersion", "eventType", "eventName", "eventSource", "recipientAccountId",
                   "userAgent", "errorCode", "errorMessage")  # fmt: skip
    cols |= {name: c(name) for name in passthrough}
    global_text = pl.when(~ct).then(c("isGlobal"))  # only ActionTrail's isGlobal is validated
    # Stage 1 computes the canonical columns once; stage 2 reads them for validation.
    lf = lf.select(
        *[cols[name].alias(name) for name in EVENT_SCHEMA if name in cols],
        time_text.alias("_time_text"),
        global_text.alias("_global_text"),
        *extra,
    )
    reason = (
        pl.when(c("eventType") == "ActionTrailInsight")
        .then(pl.lit("Insights event, not a management event"))
        .when(c("eventId").is_null())
        .then(pl.lit("missing eventId"))
        .when(c("_time_text").is_null())
        .then(pl.lit("missing eventTime"))
        .when(c("eventTime").is_null())
        .then(pl.format("unparsable eventTime '{}'", c("_time_text").str.slice(0, 80)))
        .when((c("eventTime") < MIN_EVENT_TIME) | (c("eventTime") >= MAX_EVENT_TIME))
        .then(pl.format("eventTime '{}' outside the supported years 2000-2099", c("_time_text")))
        .when(c("_latest").is_not_null() & (c("eventTime") > c("_latest")) if "_latest" in extra else pl.lit(False))
        .then(pl.format("eventTime '{}' is from the future (after its file's delivery day, or now, by more than an hour)",
                        c("_time_text")))
        .when(c("eventName").is_null())
        .then(pl.lit("missing eventName"))
        .when(c("_global_text").is_not_null() & c("isGlobal").is_null())
        .then(pl.format("isGlobal: expected boolean, got '{}'", c("_global_text")))
        .when(c("acsRegion").is_not_null() & ~c("acsRegion").str.contains(REGION_PATTERN))
        .then(pl.format("invalid region name '{}' (expected 1-63 characters of a-z, 0-9 and -)", c("acsRegion").str.slice(0, 80)))
        .otherwise(pl.lit(None, _S))
    )
    return lf.with_columns(
        is_ip_address(c("sourceIpAddress")).fill_null(False).alias("sourceIsIp"),
        reason.alias("_reason"),
    ).drop("_time_text", "_global_text")


def sls_to_raw(sls: pl.DataFrame) -> pl.DataFrame:
    """Coalesce an SLS frame (:data:`SLS_SCHEMA`) into :data:`RAW_SCHEMA` columns.

    The decoded ``event`` JSON string wins; flattened ``event.<field>`` keys fill what
    it lacks (a Logstore may keep only the index keys).

    Examples
    --------
    >>> sls = pl.DataFrame({"event.eventName": ["ConsoleSignin"]}, schema_overrides=SLS_SCHEMA)
    >>> sls_to_raw(sls)["eventName"].to_list()
    ['ConsoleSignin']
    """
    names = set(sls.columns)

    def flat(name: str) -> pl.Expr:
        return pl.col(name) if name in names else pl.lit(None, _S)

    decoded = pl.col("event").str.json_decode(RAW_STRUCT).struct
    cols = [pl.coalesce(decoded.field(n), flat(f"event.{n}")).alias(n) for n in SCALAR_FIELDS]
    ident = pl.struct(
        [
            pl.coalesce(decoded.field("userIdentity").struct.field(n), flat(f"event.userIdentity.{n}")).alias(n)
            for n in IDENTITY_FIELDS
        ]
    ).alias("userIdentity")
    sensitive = pl.coalesce(
        decoded.field("eventAttributes").struct.field("SensitiveAction"),
        flat("event.eventAttributes.SensitiveAction"),
        flat("event.eventAttributes").str.json_path_match("$.SensitiveAction"),
    )
    attrs = pl.struct(sensitive.alias("SensitiveAction")).alias("eventAttributes")
    frame = sls if "event" in names else sls.with_columns(pl.lit(None, _S).alias("event"))
    # requestParameters only from the decoded event: the flattened index keys never carry it whole.
    request = decoded.field("requestParameters").alias("requestParameters")
    return frame.select(*cols, ident, attrs, request, *[n for n in sls.columns if n.startswith("_")])
