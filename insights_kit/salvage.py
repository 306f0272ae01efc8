"""Byte-level helpers of the readers: gzip with truncation, shape sniffing, per-record salvage.

Nothing here runs on the normal path except :func:`decompress` and :func:`sniff` (a few
bytes per file). :func:`split_records` is the slow path: it runs only for a file that
Polars rejected, and walks it record by record with Python's ``json`` so that exactly the
bad records are quarantined (with position and raw text) and the rest can be loaded.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field

_DOC_HEAD = re.compile(rb'^\s*\{\s*"(?:Records|Events|RequestId|NextToken)"\s*:')
_ARRAY_KEY = re.compile(r'"(Records|Events)"\s*:\s*\[')
_WS = re.compile(r"[ \t\n\r]*")
_MAX_SNIFF_LINE = 1 << 20  # longer first lines are not parsed in Python just to sniff
_SURROGATE = re.compile("[\udc80-\udcff]")
_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array"}


def text(raw: bytes) -> str:
    """Bytes as text for ``raw`` columns: valid UTF-8 as is, invalid bytes as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


def decompress(blob: bytes) -> tuple[bytes, str | None]:
    """Gunzip `blob` if it is gzip (any member count); return (data, problem or None).

    A truncated or corrupt stream returns what decompressed before the break, with the
    problem text (``truncated gzip`` / ``corrupt gzip (...)``); non-gzip input is returned
    unchanged.

    Examples
    --------
    >>> import gzip
    >>> decompress(gzip.compress(b"abc"))
    (b'abc', None)
    >>> decompress(gzip.compress(b"abc" * 100)[:20])[1]
    'truncated gzip'
    """
    if blob[:2] != b"\x1f\x8b":
        return blob, None
    out: list[bytes] = []
    buf = blob
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(d.decompress(buf))
        except zlib.error as exc:
            out.append(_until_error(buf))
            return b"".join(out), f"corrupt gzip ({exc})"
        if not d.eof:
            out.append(d.flush())
            return b"".join(out), "truncated gzip"
        buf = d.unused_data
        # Concatenated members are legal gzip; trailing NUL padding is common on copies.
        if buf[:2] != b"\x1f\x8b":
            return b"".join(out), None


def _until_error(buf: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = []
    for i in range(0, len(buf), 1 << 14):
        try:
            out.append(d.decompress(buf[i : i + (1 << 14)]))
        except zlib.error:
            break
    return b"".join(out)


def first_keys(line: bytes) -> set[str] | None:
    """Keys of `line` if it is one complete JSON object, else None."""
    if len(line) > _MAX_SNIFF_LINE:
        return None
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return set(obj) if isinstance(obj, dict) else None


def is_sls(keys) -> bool:
    return "event" in keys or "__topic__" in keys or any(k.startswith("event.") for k in keys)


def sniff(data: bytes) -> str:
    """Shape of decompressed `data`: ``array``, ``document``, ``sls`` or ``ndjson``.

    Examples
    --------
    >>> sniff(b'{"Records": []}'), sniff(b'[{"eventId": "a"}]'), sniff(b'{"eventId": "a"}\\n')
    ('document', 'array', 'ndjson')
    """
    s = data.lstrip()
    if s[:1] == b"[":
        return "array"
    if _DOC_HEAD.match(s):
        return "document"
    keys = first_keys(s.split(b"\n", 1)[0])
    if keys is None or "Records" in keys or "Events" in keys:
        return "document"  # pretty-printed (or broken): Polars' read_json decides
    return "sls" if is_sls(keys) else "ndjson"


@dataclass
class Salvaged:
    """Records recovered from a rejected file: good objects with where they came from."""

    positions: list[str] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    bad: list[tuple[str, str, str]] = field(default_factory=list)  # (position, reason, raw)
    lookup: bool = False  # came from a LookupEvents page


def _type_name(value) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), "object")


def check_record(obj) -> tuple[dict | None, str | None]:
    """Fix or reject the parts of one record that would make Polars reject the file.

    Returns (record ready for the fast reader, None) or (None, reason).
    """
    if not isinstance(obj, dict):
        return None, f"record is not a JSON object (got {_type_name(obj)})"
    if isinstance(obj.get("event"), str):  # SLS: the event as a JSON string
        try:
            inner = json.loads(obj["event"])
        except ValueError as exc:
            return None, f"invalid JSON in 'event' field: {exc.args[0].split(':')[0]}"
        inner, why = check_record(inner)
        if why:
            return None, f"'event' field: {why}"
        obj = {**obj, "event": json.dumps(inner)}
    ident = obj.get("userIdentity")
    if ident is not None and not isinstance(ident, dict):
        return None, f"userIdentity: expected object, got {_type_name(ident)}"
    attrs = obj.get("eventAttributes")
    if attrs is not None and not isinstance(attrs, dict):
        # Not worth losing the record for: a JSON-text eventAttributes is decoded, else dropped.
        try:
            attrs = json.loads(attrs) if isinstance(attrs, str) else None
        except ValueError:
            attrs = None
        obj = {**obj, "eventAttributes": attrs if isinstance(attrs, dict) else None}
    return obj, None


def split_records(data: bytes, problem: str | None) -> Salvaged:
    """Walk a rejected file record by record.

    `problem` is the gzip problem (truncated/corrupt) if any; the tail that breaks there
    is quarantined at ``byte N`` (offset in the decompressed stream) with that reason.
    """
    s = data.lstrip()
    if s[:1] == b"[" or (s[:1] == b"{" and first_keys(s.split(b"\n", 1)[0]) is None) or _DOC_HEAD.match(s):
        out = _split_document(data, problem)
        if out is not None:
            return out
    return _split_lines(data, problem)


def _add(out: Salvaged, position: str, raw: str, obj) -> None:
    rec, why = check_record(obj)
    if why:
        out.bad.append((position, why, raw))
    else:
        out.positions.append(position)
        out.raws.append(raw)
        out.objects.append(rec)


def _escaped(t: str) -> str:
    return t.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _array_start(t: str) -> tuple[int, bool] | None:
    """Offset just after the records array's ``[`` and whether it is a LookupEvents page."""
    start = len(t) - len(t.lstrip())
    if t[start : start + 1] == "[":
        return start + 1, False
    m = _ARRAY_KEY.search(t)
    return (m.end(), m.group(1) == "Events") if m else None


class _Broken(Exception):
    def __init__(self, offset: int, k: int, msg: str):
        super().__init__(msg)
        self.offset, self.k, self.msg = offset, k, msg


def _elements(t: str, p: int):
    """Yield (k, start, end, obj) per array element from offset `p`; raise _Broken at a break."""
    dec = json.JSONDecoder()
    k = 0
    while True:
        p = _WS.match(t, p).end()
        if t[p : p + 1] == "]":
            return
        k += 1
        if p >= len(t):
            raise _Broken(p, k, "unexpected end of data")
        try:
            obj, end = dec.raw_decode(t, p)
        except ValueError as exc:
            raise _Broken(p, k, str(exc).split(":")[0]) from None
        yield k, p, end, obj
        p = _WS.match(t, end).end()
        if t[p : p + 1] == ",":
            p += 1
        elif t[p : p + 1] != "]":
            raise _Broken(p, k + 1, "Expecting ',' delimiter")


def _split_document(data: bytes, problem: str | None) -> Salvaged | None:
    """Array or ``{"Records"/"Events": [...]}``; None if it is neither (try lines)."""
    t = data.decode("utf-8", "surrogateescape")  # keeps invalid bytes recoverable
    out = Salvaged()
    found = _array_start(t)
    if found is None:
        try:
            obj = json.loads(t)
        except ValueError:
            return None
        _add(out, "record 1", t.strip(), obj)  # a single pretty-printed record
        return out
    p, out.lookup = found
    k = 0
    try:
        for k, start, end, obj in _elements(t, p):
            raw = t[start:end]
            if _SURROGATE.search(raw):
                out.bad.append((f"record {k}", "invalid UTF-8", _escaped(raw)))
            else:
                _add(out, f"record {k}", raw, obj)
    except _Broken as br:
        _tail(out, t, br.offset, br.k, problem, br.msg)
        return out
    if problem:  # the break fell after the array: nothing to salvage, still say so
        _tail(out, t, len(t), k + 1, problem, "")
    return out


def _tail(out: Salvaged, t: str, p: int, k: int, problem: str | None, msg: str) -> None:
    """Quarantine everything from offset `p` on as one row (an array cannot resync)."""
    rest = t[p:]
    if problem:
        n = len(t[:p].encode("utf-8", "surrogateescape"))
        reason = f"{problem}: recovered {len(out.objects) + len(out.bad)} records before byte {n}"
        out.bad.append((f"byte {n}", reason, _escaped(rest)))
    else:
        out.bad.append((f"record {k}", f"invalid JSON: {msg} (rest of the file not read)", _escaped(rest)))


def _split_lines(data: bytes, problem: str | None) -> Salvaged:
    out = Salvaged()
    lines = data.split(b"\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    offset = 0
    for i, line in enumerate(lines):
        start, offset = offset, offset + len(line) + 1
        ln = line.strip()
        if not ln:
            continue
        try:
            t = ln.decode("utf-8")
        except UnicodeDecodeError:
            out.bad.append((f"line {i + 1}", "invalid UTF-8", text(ln)))
            continue
        try:
            obj = json.loads(t)
        except ValueError as exc:
            if problem and i == last:
                n = len(out.objects) + len(out.bad)
                out.bad.append((f"byte {start}", f"{problem}: recovered {n} records before byte {start}", t))
                problem = None
            else:
                out.bad.append((f"line {i + 1}", f"invalid JSON: {str(exc).split(':')[0]}", t))
            continue
        _add(out, f"line {i + 1}", t, obj)
    if problem:  # cut exactly at a line end: the records are all there, report the break
        n = len(data)
        out.bad.append((f"byte {n}", f"{problem}: recovered {len(out.objects) + len(out.bad)} records before byte {n}", ""))
    return out


def document_locate(reload):
    """``locate(indices)`` for a document Polars read fine: (``record k``, element text).

    `reload()` returns the decompressed file again (only called when needed).
    """

    def locate(idx: list[int]) -> list[tuple[str, str]]:
        t = reload().decode("utf-8", "surrogateescape")
        found = _array_start(t)
        spans = [] if found is None else [t[a:b] for _, a, b, _ in _elements(t, found[0])]
        return [(f"record {k + 1}", _escaped(spans[k]) if k < len(spans) else "") for k in idx]

    return locate
