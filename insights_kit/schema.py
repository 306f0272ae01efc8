"""The canonical management-event table.

Every reader maps its input onto :data:`EVENT_SCHEMA`; nothing downstream sees a raw
delivery shape. The schema is explicit and never inferred, so a column that is rare in
the input (``errorCode`` appears in few records) is never dropped.

Field names follow ActionTrail's management-event structure (reference section 1);
``userIdentity`` sub-fields are flattened (``userIdentityType``, ``principalId``, ...).
"""

from __future__ import annotations

import re

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")

#: Column name -> dtype of the canonical table, in output order.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "eventId": pl.String(),  # unique key; deduplication is on this column
    "eventTime": UTC_DATETIME,
    "eventVersion": pl.String(),
    "eventType": pl.String(),  # ApiCall, ConsoleOperation, ConsoleSignin, AliyunServiceEvent, ...
    "eventCategory": pl.String(),  # Management (CloudTrail adds Data)
    "eventRW": pl.String(),  # Read | Write (null when the source does not say)
    "eventName": pl.String(),
    "eventSource": pl.String(),
    "serviceName": pl.String(),
    "acsRegion": pl.String(),
    "isGlobal": pl.Boolean(),
    "recipientAccountId": pl.String(),
    "requestId": pl.String(),
    "sourceIpAddress": pl.String(),
    "sourceIsIp": pl.Boolean(),  # False for service domains, "Internal", "AWS Internal", ...
    "userAgent": pl.String(),
    "userIdentityType": pl.String(),
    "principalId": pl.String(),
    "accountId": pl.String(),  # userIdentity.accountId
    "userName": pl.String(),
    "accessKeyId": pl.String(),
    "userIdentityArn": pl.String(),  # CloudTrail only
    "errorCode": pl.String(),
    "errorMessage": pl.String(),
    "sensitiveAction": pl.Boolean(),  # eventAttributes.SensitiveAction
    # From requestParameters (the rest of it is not kept; docs/design.md, "Canonical events"):
    "requestUserName": pl.String(),  # the user a request acts on (userName / UserName)
    "grantsAdmin": pl.Boolean(),  # the request grants admin rights (normalize.grants_admin); null: no parameters
    "trustsOutside": pl.Boolean(),  # a role trust policy another account may assume (normalize.trusts_outside)
    "vpcId": pl.String(),
    "sourceFormat": pl.String(),  # which reader produced the row (see readers.FORMATS)
    "sourceFile": pl.String(),
}

EVENT_COLUMNS: list[str] = list(EVENT_SCHEMA)

#: What a region id may look like. Region ids become folder names (lake partitions, Insights
#: store, reports), so anything else (``../``, slashes) is rejected wherever one enters.
#: 63 characters at most (a DNS label, longer than any cloud's region id): a 250-character
#: region would otherwise fail as a too-long file name half way through writing a lake.
REGION_PATTERN = r"^[a-z0-9-]{1,63}$"


def check_region(region: object) -> str:
    """Return ``region`` if it is a valid region id (:data:`REGION_PATTERN`), else raise ValueError."""
    if not isinstance(region, str) or not re.fullmatch(REGION_PATTERN, region):
        shown = region[:80] if isinstance(region, str) else region
        raise ValueError(f"invalid region name {shown!r}: expected 1-63 characters of a-z, 0-9 and -")
    return region


#: Columns a record must carry to be loaded; a record without one is quarantined.
REQUIRED_COLUMNS: tuple[str, ...] = ("eventId", "eventTime", "eventName")


#: ActionTrail's seven insight types (reference section 4), in the order summaries and reports
#: list them; insights-kit builds all seven.
ACTIONTRAIL_INSIGHT_TYPES: tuple[str, ...] = (
    "ApiCallRateInsight", "ApiErrorRateInsight", "IpInsight", "AkInsight",
    "PolicyChangeInsight", "PasswordChangeInsight", "TrailConcealmentInsight",
)  # fmt: skip
#: The insight types insights-kit analyses (the default insight selector).
INSIGHT_TYPES: tuple[str, ...] = ACTIONTRAIL_INSIGHT_TYPES


def empty_events() -> pl.DataFrame:
    """An empty frame with the canonical schema."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Select and cast the canonical columns, adding missing ones as nulls, in order."""
    lf = frame.lazy()
    present = set(lf.collect_schema().names())
    return lf.select(
        [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in EVENT_SCHEMA.items()
        ]
    )


#: Schema of one quarantine record (see docs/design.md, "Quarantine").
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "sourceFile": pl.String(),
    "position": pl.String(),  # "line 12", "record 3", "byte 4096", "file"
    "reason": pl.String(),
    "raw": pl.String(),  # the record's text as read (invalid bytes backslash-escaped), may be ""
    # How many records the row stands for: 1 for a record; for a "file" row the records
    # in it when they can be counted (lines of a file with no JSON at all), else 0.
    "records": pl.Int64(),
}


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)
