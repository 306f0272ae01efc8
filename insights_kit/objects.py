"""Object storage as a source: ``s3://bucket/prefix`` and ``oss://bucket/prefix``.

Read with boto3 (OSS speaks the S3 API). boto3 was chosen over obstore and fsspec/s3fs
because it resolves the *whole* standard credential chain users already have (environment,
``~/.aws`` profiles with SSO and assume-role, container and instance roles), honours the
standard endpoint settings (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, a profile's
``endpoint_url``) and reports errors with S3's own codes, which become one-line messages
here. It is what moto emulates, so the suite tests it against a real local server.

Endpoints
---------
* ``s3://``: AWS S3, or any S3-compatible server: ``--endpoint-url`` (sets
  ``INSIGHTS_KIT_ENDPOINT_URL``), else boto3's own settings.
* ``oss://``: Alibaba Cloud OSS through its S3-compatible endpoint
  ``https://s3.oss-<region>.aliyuncs.com`` (or ``-internal`` inside a VPC), in
  virtual-hosted style, which OSS requires. The endpoint comes from ``--endpoint-url``,
  ``OSS_ENDPOINT``, or ``OSS_REGION`` (``cn-hangzhou`` -> the public endpoint). Credentials:
  boto3's chain, or ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
  (and ``ALIBABA_CLOUD_SECURITY_TOKEN``) when set. (Tested against moto's S3 server only;
  no real OSS bucket is reachable from where this is built.)

Listing walks the key space one folder level at a time (``Delimiter='/'``), concurrently,
and never descends into a ``YYYY``, ``YYYY/MM``, ``YYYY/MM/DD`` or ``date=YYYY-MM-DD``
folder outside the requested days, so a window of one day lists one day per region.
"""

from __future__ import annotations

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable

SCHEMES = ("s3://", "oss://")
ENDPOINT_ENV = "INSIGHTS_KIT_ENDPOINT_URL"
#: Concurrent requests for listing and fetching (network-bound, so more than the cores).
CONCURRENCY = 16

_YEAR, _TWO_DIGITS = re.compile(r"^\d{4}$"), re.compile(r"^\d{2}$")
_HIVE_DAY = re.compile(r"^date=(\d{4})-(\d{2})-(\d{2})$")


class StorageError(Exception):
    """An object-storage problem the user must fix (bucket, credentials, permission, endpoint)."""


def is_remote(source: object) -> bool:
    return str(source).startswith(SCHEMES)


@dataclass(frozen=True)
class Location:
    scheme: str  # "s3" or "oss"
    bucket: str
    prefix: str  # "" or ending in "/" unless it names one object


def parse(url: str) -> Location:
    scheme, _, rest = str(url).partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme not in ("s3", "oss") or not bucket:
        raise StorageError(f"{url}: expected s3://bucket/prefix or oss://bucket/prefix")
    return Location(scheme, bucket, prefix)


# --------------------------------------------------------------------------- clients
_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def endpoint_for(scheme: str) -> str | None:
    given = os.environ.get(ENDPOINT_ENV)
    if given or scheme == "s3":
        return given or None  # None: boto3 applies AWS_ENDPOINT_URL(_S3) and the profile itself
    if os.environ.get("OSS_ENDPOINT"):
        endpoint = os.environ["OSS_ENDPOINT"]
        return endpoint if "://" in endpoint else f"https://{endpoint}"
    if os.environ.get("OSS_REGION"):
        return f"https://s3.oss-{os.environ['OSS_REGION']}.aliyuncs.com"
    raise StorageError(
        "oss:// needs an endpoint: pass --endpoint-url https://s3.oss-<region>.aliyuncs.com, "
        "or set OSS_ENDPOINT or OSS_REGION"
    )


def client(scheme: str) -> Any:
    """A boto3 S3 client for ``scheme``, one per process and endpoint (clients are thread-safe)."""
    endpoint = endpoint_for(scheme)
    key = (scheme, endpoint, os.environ.get("AWS_PROFILE"), os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"))
    with _lock:
        if key not in _clients:
            _clients[key] = _new_client(scheme, endpoint)
        return _clients[key]


def _new_client(scheme: str, endpoint: str | None) -> Any:
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"max_attempts": 4, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 60,
        "max_pool_connections": CONCURRENCY,
    }
    kwargs: dict[str, Any] = {"endpoint_url": endpoint}
    if scheme == "oss":
        # OSS accepts only virtual-hosted requests and not the newer flexible checksums.
        options["s3"] = {"addressing_style": "virtual" if endpoint and "aliyuncs.com" in endpoint else "auto"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
        if os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"):
            kwargs.update(
                aws_access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                aws_secret_access_key=os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
                aws_session_token=os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN"),
            )
        match = re.search(r"oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com", endpoint or "")
        kwargs["region_name"] = match.group(1) if match else os.environ.get("OSS_REGION", "us-east-1")
    session = boto3.session.Session()
    if "region_name" not in kwargs and session.region_name is None:
        kwargs["region_name"] = "us-east-1"  # S3 routes by bucket; SigV4 needs some region
    return session.client("s3", config=Config(**options), **kwargs)


def explain(exc: BaseException, where: str, action: str = "listing") -> StorageError:
    """One line for a boto3/botocore failure: where, what went wrong and what to check."""
    return StorageError(f"{where}: {_reason(exc, action)}")


def _reason(exc: BaseException, action: str) -> str:
    from botocore import exceptions as bex

    if isinstance(exc, bex.NoCredentialsError):
        return ("no credentials found (environment AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET for oss://, a profile in ~/.aws, "
                "or an instance role)")  # fmt: skip
    if isinstance(exc, bex.EndpointConnectionError):
        return f"cannot reach the storage endpoint {exc.kwargs.get('endpoint_url', '')}"
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return f"no such bucket ({code})"
        if code in ("InvalidAccessKeyId", "InvalidAccessKeyId.NotFound"):
            return f"the storage service does not know this AccessKey ID ({code}); check the credentials"
        if code == "SignatureDoesNotMatch":
            return f"the secret key does not match the AccessKey ID ({code}); check the credentials"
        if code in ("AccessDenied", "403", "Forbidden") or status == 403:
            need = "s3:ListBucket (oss:ListObjects)" if action == "listing" else "s3:GetObject (oss:GetObject)"
            return f"access denied {action} ({code}); the credentials need {need}"
        if code in ("NoSuchKey", "404"):
            return f"no such object ({code})"
        return f"{action} failed ({code}: {message})".rstrip()
    return f"{action} failed ({type(exc).__name__}: {exc})"


# --------------------------------------------------------------------------- objects
class ObjectReadError(OSError):
    """A GetObject that failed: the reader quarantines the object like an unreadable file."""


class RemoteFile:
    """One object, shaped like the :class:`pathlib.Path` the readers use for local files."""

    __slots__ = ("scheme", "bucket", "key", "size", "etag")

    def __init__(self, scheme: str, bucket: str, key: str, size: int, etag: str = "") -> None:
        self.scheme, self.bucket, self.key, self.size, self.etag = scheme, bucket, key, size, etag

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    __repr__ = __str__

    def as_posix(self) -> str:
        return str(self)

    def __lt__(self, other: "RemoteFile") -> bool:
        return str(self) < str(other)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        name = self.name
        return name[name.rfind(".") :] if "." in name[1:] else ""

    def stat(self) -> os.stat_result:
        return os.stat_result((0, 0, 0, 0, 0, 0, self.size, 0, 0, 0))

    def read_bytes(self) -> bytes:
        try:
            body = client(self.scheme).get_object(Bucket=self.bucket, Key=self.key)["Body"]
            return body.read()
        except Exception as exc:  # noqa: BLE001 - any failure is this object's problem
            raise ObjectReadError(0, _reason(exc, "reading"), str(self)) from None


def _folder_days(parts: list[str]) -> tuple[date, date] | None:
    """The days a folder path can hold, from its trailing date components; None: any day."""
    last = parts[-1]
    hive = _HIVE_DAY.match(last)
    if hive:
        try:
            day = date(int(hive.group(1)), int(hive.group(2)), int(hive.group(3)))
        except ValueError:
            return None
        return day, day
    tail = parts[-3:]
    try:
        if len(tail) == 3 and _YEAR.match(tail[0]) and _TWO_DIGITS.match(tail[1]) and _TWO_DIGITS.match(tail[2]):
            day = date(int(tail[0]), int(tail[1]), int(tail[2]))
            return day, day
        if len(tail) >= 2 and _YEAR.match(tail[-2]) and _TWO_DIGITS.match(tail[-1]):
            year, month = int(tail[-2]), int(tail[-1])
            first = date(year, month, 1)
            return first, date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        if _YEAR.match(last) and 1970 <= int(last) <= 9999:
            return date(int(last), 1, 1), date(int(last), 12, 31)
    except ValueError:
        return None
    return None


@dataclass
class Listing:
    files: list[RemoteFile]
    folders_pruned: int  # date folders never listed because they lie outside the window
    requests: int


def list_objects(
    url: str,
    *,
    first_day: date | None = None,
    last_day: date | None = None,
    skip_folder: Callable[[str], bool] = lambda _: False,
) -> Listing:
    """Objects under ``url``, skipping date folders outside ``[first_day, last_day]``.

    Raises :class:`StorageError` (one line) when the bucket cannot be listed at all.
    """
    loc = parse(url)
    s3 = client(loc.scheme)
    files: list[RemoteFile] = []
    pruned = requests = 0

    def one_level(prefix: str) -> tuple[list[str], list[RemoteFile], int]:
        folders, found, calls = [], [], 0
        paginator = s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix, Delimiter="/"):
                calls += 1
                folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
                found += [
                    RemoteFile(loc.scheme, loc.bucket, o["Key"], int(o["Size"]), str(o.get("ETag", "")).strip('"'))
                    for o in page.get("Contents", [])
                    if not o["Key"].endswith("/")
                ]
        except Exception as exc:  # noqa: BLE001
            raise explain(exc, f"{loc.scheme}://{loc.bucket}/{prefix}") from None
        return folders, found, calls

    level = [loc.prefix]
    if loc.prefix and not loc.prefix.endswith("/"):
        # s3://bucket/a/b names the folder a/b/ or the object a/b itself.
        folders, found, requests = one_level(loc.prefix)
        files += [f for f in found if f.key == loc.prefix]
        level = [p for p in folders if p == loc.prefix + "/"]
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        while level:
            nxt: list[str] = []
            for folders, found, calls in pool.map(one_level, level):
                requests += calls
                files += found
                for folder in folders:
                    if skip_folder(folder):
                        continue
                    days = _folder_days(folder.rstrip("/").split("/"))
                    if days and ((first_day and days[1] < first_day) or (last_day and days[0] > last_day)):
                        pruned += 1
                        continue
                    nxt.append(folder)
            level = sorted(nxt)
    return Listing(sorted(files), pruned, requests)


def polars_scan_args(files: list[RemoteFile]) -> tuple[list[str], dict[str, str]]:
    """URLs and ``storage_options`` for ``pl.scan_parquet`` over these objects, so a lake in a
    bucket stays a lazy scan (Polars fetches only the row groups and columns a plan needs).

    The credentials are the ones boto3 resolved (Polars' own chain knows no OSS variables).
    """
    scheme = files[0].scheme
    s3 = client(scheme)
    creds = s3._request_signer._credentials  # the client's resolved (possibly refreshing) credentials
    options: dict[str, str] = {"aws_region": s3.meta.region_name or "us-east-1"}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        options["aws_access_key_id"] = frozen.access_key
        options["aws_secret_access_key"] = frozen.secret_key
        if frozen.token:
            options["aws_session_token"] = frozen.token
    endpoint = s3.meta.endpoint_url
    if endpoint and not re.match(r"https://s3\.([a-z0-9-]+\.)?amazonaws\.com", endpoint):
        options["aws_endpoint_url"] = endpoint
        if endpoint.startswith("http://"):
            options["aws_allow_http"] = "true"
        if scheme == "oss":
            options["aws_virtual_hosted_style_request"] = "true"
    return [f"s3://{f.bucket}/{f.key}" for f in files], options
