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
from collections import Counter
from dataclasses import dataclass, field

from insights_kit.normalize import IDENTITY_FIELDS, RAW_SCHEMA, REQUEST_FIELDS

_DOC_HEAD = re.compile(rb'^\s*\{\s*"(?:Records|Events|RequestId|NextToken)"\s*:')
_ARRAY_KEY = re.compile(r'"(Records|Events)"\s*:\s*\[')
_WS = re.compile(r"[ \t\n\r]*")
_MAX_SNIFF_LINE = 1 << 20  # longer first lines are not parsed in Python just to sniff
_SURROGATE = re.compile("[\udc80-\udcff]")
_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array"}


def text(raw: bytes) -> str:
    """Bytes as text for ``raw`` columns: valid UTF-8 as is, invalid bytes as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


#: Default cap on the decompressed size of one file (or zip member). Delivery files are a
#: few MB; anything past this is treated as a decompression bomb and never held in memory.
MAX_FILE_BYTES = 512 << 20
_CHUNK = 1 << 20
_IN_STEP = 1 << 14


class TooLarge(Exception):
    """A file that decompresses past the size cap (see :data:`MAX_FILE_BYTES`)."""

    def __init__(self, limit: int):
        super().__init__(f"decompresses to more than {limit >> 20} MiB (the per-file limit): not read")


def decompress(blob: bytes, limit: int = MAX_FILE_BYTES) -> tuple[bytes, str | None]:
    """Gunzip `blob` if it is gzip (any member count); return (data, problem or None).

    A truncated or corrupt stream returns what decompressed before the break, with the
    problem text (``truncated gzip`` / ``corrupt gzip (...)``); non-gzip input is returned
    unchanged. Decompression is streamed in 1 MiB steps and stops with :class:`TooLarge`
    once the output passes `limit` bytes, so a bomb never costs more than `limit` of memory.

    Examples
    --------
    >>> import gzip
    >>> decompress(gzip.compress(b"abc"))
    (b'abc', None)
    >>> decompress(gzip.compress(b"abc" * 100)[:20])[1]
    'truncated gzip'
    """
    if blob[:2] != b"\x1f\x8b":
        if len(blob) > limit:
            raise TooLarge(limit)
        return blob, None
    out: list[bytes] = []
    size = 0
    buf = blob
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pos = 0
        try:
            # Input goes in 16 KiB steps so that a corrupt stream keeps all it decoded before
            # the break; output comes in at most 1 MiB steps so the cap is checked as we go.
            while not d.eof:
                if d.unconsumed_tail:
                    chunk = d.unconsumed_tail
                elif pos < len(buf):
                    chunk, pos = buf[pos : pos + _IN_STEP], pos + _IN_STEP
                else:
                    break
                piece = d.decompress(chunk, _CHUNK)
                size += len(piece)
                if size > limit:
                    raise TooLarge(limit)
                out.append(piece)
        except zlib.error as exc:
            return b"".join(out), f"corrupt gzip ({exc})"
        if not d.eof:
            out.append(d.flush())
            return b"".join(out), "truncated gzip"
        buf = d.unused_data + buf[pos:]
        # Concatenated members are legal gzip; trailing NUL padding is common on copies.
        if buf[:2] != b"\x1f\x8b":
            return b"".join(out), None


def first_keys(line: bytes) -> set[str] | None:
    """Keys of `line` if it is one complete JSON object, else None."""
    if len(line) > _MAX_SNIFF_LINE:
        return None
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
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
    repaired: Counter = field(default_factory=Counter)  # field -> records with invalid UTF-8 replaced


def _type_name(value) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), "object")


_READ_KEYS = frozenset(RAW_SCHEMA)
_IDENTITY_KEYS = frozenset(IDENTITY_FIELDS)
_VALUE_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def _is_read_key(key: str) -> bool:
    return key in _READ_KEYS or key in ("event", "__topic__") or key.startswith("event.")


def value_end(t: str, p: int) -> int:
    """End offset of the JSON value starting at `p`, found without recursion.

    Used only where Python's parser gives up (nesting deeper than its recursion limit):
    brackets are counted, strings skipped, so any depth costs one linear pass.
    """
    p = _WS.match(t, p).end()
    if t[p : p + 1] not in ("{", "["):
        _, end = json.JSONDecoder().raw_decode(t, p)
        return end
    depth = 0
    for m in _VALUE_TOKENS.finditer(t, p):
        tok = m.group()
        if tok in "[{":
            depth += 1
        elif tok in "]}":
            depth -= 1
            if depth == 0:
                return m.end()
    raise ValueError("unexpected end of data")


_REQUEST_KEYS = frozenset(REQUEST_FIELDS)
_SUB_KEYS = {
    "userIdentity": _IDENTITY_KEYS.__contains__,
    "eventAttributes": {"SensitiveAction"}.__contains__,
    "requestParameters": _REQUEST_KEYS.__contains__,
}


def _shallow_fields(t: str, keep=_is_read_key) -> dict:
    """The fields of object text `t` that the readers use, skipping the others unparsed.

    An attacker controls requestParameters (and userIdentity.sessionContext): nesting it
    10,000 levels deep must not cost the event. Raises ValueError (or RecursionError for
    a field we read that is itself nested that deep).
    """
    dec = json.JSONDecoder()
    p = _WS.match(t, 0).end()
    if t[p : p + 1] != "{":
        raise ValueError("Expecting value")
    p = _WS.match(t, p + 1).end()
    obj: dict = {}
    while t[p : p + 1] != "}":
        key, p = dec.raw_decode(t, p)
        if not isinstance(key, str):
            raise ValueError("Expecting property name enclosed in double quotes")
        p = _WS.match(t, p).end()
        if t[p : p + 1] != ":":
            raise ValueError("Expecting ':' delimiter")
        start = _WS.match(t, p + 1).end()
        end = value_end(t, start)
        if keep(key):
            try:
                obj[key] = json.loads(t[start:end])
            except RecursionError:
                if key not in _SUB_KEYS or keep is not _is_read_key:
                    raise
                try:
                    obj[key] = _shallow_fields(t[start:end], _SUB_KEYS[key])
                except (ValueError, RecursionError):
                    if key != "requestParameters":
                        raise
                    obj[key] = None  # context only: a request we cannot read costs it, not the event
        p = _WS.match(t, end).end()
        if t[p : p + 1] == ",":
            p = _WS.match(t, p + 1).end()
        elif t[p : p + 1] != "}":
            raise ValueError("Expecting ',' delimiter")
    if t[_WS.match(t, p + 1).end() :].strip():
        raise ValueError("Extra data")
    return obj


def loads(t: str) -> tuple[object, str | None]:
    """``json.loads`` that never raises: (value, None) or (None, reason).

    A record nested deeper than Python's parser allows keeps the fields we read (see
    :func:`_shallow_fields`); only a read field nested that deep loses the record.
    """
    try:
        try:
            return json.loads(t), None
        except RecursionError:
            return _shallow_fields(t), None
    except ValueError as exc:
        return None, f"invalid JSON: {str(exc).split(':')[0]}"
    except RecursionError:
        return None, "JSON nested too deeply in a field the readers use"


def _has_surrogate(value) -> bool:
    """True if any string inside `value` holds an undecodable byte (iterative: any depth)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _fix(value):
    """`value` with every undecodable byte replaced by U+FFFD (only read fields get here)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_fix(k): _fix(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix(v) for v in value]
    return value


def repair(obj, repaired: Counter):
    """Replace invalid UTF-8 (decoded as surrogates) with U+FFFD; count it per field.

    Every damaged field is counted (the user should know), but only the fields the readers
    use are rewritten: the others, of any depth, are dropped unread by :func:`check_record`.
    """
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if not _has_surrogate(value) and not _SURROGATE.search(key):
            out[key] = value
            continue
        fixed_key = _fix(key)
        if key == "userIdentity" and isinstance(value, dict):
            for sub, v in value.items():
                if _has_surrogate(v):
                    repaired[f"userIdentity.{_fix(sub)}"] += 1
        else:
            repaired[fixed_key] += 1
        out[fixed_key] = _fix(value) if _is_read_key(fixed_key) else value
    return out


def check_record(obj) -> tuple[dict | None, str | None]:
    """Fix or reject the parts of one record that would make Polars reject the file.

    Returns (record ready for the fast reader, None) or (None, reason).
    """
    if not isinstance(obj, dict):
        return None, f"record is not a JSON object (got {_type_name(obj)})"
    if isinstance(obj.get("event"), str):  # SLS: the event as a JSON string
        inner, why = loads(obj["event"])
        if why:
            return None, why.replace("invalid JSON", "invalid JSON in 'event' field", 1)
        inner, why = check_record(inner)
        if why:
            return None, f"'event' field: {why}"
        obj = {**obj, "event": json.dumps(inner)}
    # Only read keys go on to the fast reader: the rest (responseElements, ...) can be of
    # any size and depth, and re-encoding it would cost time for nothing.
    obj = {k: v for k, v in obj.items() if _is_read_key(k)}
    ident = obj.get("userIdentity")
    if ident is not None and not isinstance(ident, dict):
        return None, f"userIdentity: expected object, got {_type_name(ident)}"
    if ident is not None:
        obj["userIdentity"] = {k: v for k, v in ident.items() if k in _IDENTITY_KEYS}
    attrs = obj.get("eventAttributes")
    if attrs is not None and not isinstance(attrs, dict):
        # Not worth losing the record for: a JSON-text eventAttributes is decoded, else dropped.
        try:
            attrs = json.loads(attrs) if isinstance(attrs, str) else None
        except ValueError:
            attrs = None
        obj = {**obj, "eventAttributes": attrs if isinstance(attrs, dict) else None}
    request = obj.get("requestParameters")
    if request is not None:
        # Context, not identity: one that is not an object is dropped, the event kept.
        obj["requestParameters"] = (
            {k: v if isinstance(v, str) or v is None else json.dumps(v) for k, v in request.items() if k in _REQUEST_KEYS}
            if isinstance(request, dict)
            else None
        )
    if isinstance(obj.get("eventAttributes"), dict):
        obj["eventAttributes"] = {k: v for k, v in obj["eventAttributes"].items() if k == "SensitiveAction"}
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
    """Keep `obj` (repaired) or quarantine it; `raw` may hold undecodable bytes as surrogates."""
    raw = _escaped(raw) if _SURROGATE.search(raw) else raw
    rec, why = check_record(repair(obj, out.repaired))
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


class _TooDeep(str):
    """An array element too deep for ``json.loads``; :func:`loads` parses what we read of it."""


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
        except RecursionError:  # deeper than Python's parser goes: find its end by counting
            try:
                end = value_end(t, p)
            except ValueError as exc:
                raise _Broken(p, k, str(exc).split(":")[0]) from None
            obj = _TooDeep(t[p:end])
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
        obj, why = loads(t)
        if why:
            return None
        _add(out, "record 1", t.strip(), obj)  # a single pretty-printed record
        return out
    p, out.lookup = found
    k = 0
    try:
        for k, start, end, obj in _elements(t, p):
            raw = t[start:end]
            if isinstance(obj, _TooDeep):
                obj, why = loads(obj)
                if why:
                    out.bad.append((f"record {k}", why, _escaped(raw)))
                    continue
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
        # Undecodable bytes survive as surrogates: inside a string they are repaired (U+FFFD)
        # by _add, so one bad byte in a user agent never costs the event.
        t = ln.decode("utf-8", "surrogateescape")
        obj, why = loads(t)
        if why:
            if problem and i == last:
                n = len(out.objects) + len(out.bad)
                out.bad.append((f"byte {start}", f"{problem}: recovered {n} records before byte {start}", text(ln)))
                problem = None
            else:
                out.bad.append((f"line {i + 1}", why, text(ln)))
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
