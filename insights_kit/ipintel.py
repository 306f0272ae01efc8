"""Offline facts about IP addresses: validity, private/reserved class, prefixes, country, ASN.

Everything here works on the *distinct* addresses of a frame (a unit has thousands of
events per address), and every answer is cached for the life of the process, so a
detector can call :func:`ip_table` once per unit without caring about cost.

Country and ASN come from the GeoLite2-derived database bundled with ``geoip2fast``
(``geoip2fast-asn-ipv6.dat.gz``: country + ASN *name*, IPv4 and IPv6; the data has no
AS numbers, so the AS organisation name, e.g. ``AMAZON-AES``, is the ASN key). No
network access is ever made. When ``geoip2fast`` or its data is missing, country and ASN
are null and everything else still works.

Address classes (column ``addressClass``):

``public``
    globally routable; country/ASN looked up.
``private``
    an internal network a unit may really use: RFC 1918 (10/8, 172.16/12, 192.168/16),
    shared/CGNAT 100.64/10, loopback, link-local, IPv6 ULA fc00::/7, fe80::/10, ::1.
``reserved``
    not globally routable and not internal either: documentation (192.0.2/24,
    198.51.100/24, 203.0.113/24, 2001:db8::/32), benchmarking, multicast, 0/8, 240/4...
    Country/ASN are null (unknown).

Prefixes: ``narrowPrefix`` is the /24 of an IPv4 address and the /64 of an IPv6 address
(one LAN); ``widePrefix`` is the /16 (IPv4) or /48 (IPv6, one site). IPv4-mapped IPv6
addresses (``::ffff:1.2.3.4``) are treated as the IPv4 address.

Examples
--------
>>> table = ip_table(["10.1.9.9", "203.0.113.77", "Internal"])
>>> table.select("address", "isIp", "addressClass", "narrowPrefix").rows()
[('10.1.9.9', True, 'private', '10.1.9.0/24'), ('203.0.113.77', True, 'reserved', '203.0.113.0/24'), ('Internal', False, None, None)]
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

#: Schema of :func:`ip_table`.
IP_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "address": pl.String(),
    "isIp": pl.Boolean(),
    "ipVersion": pl.Int8(),
    "addressClass": pl.String(),  # public | private | reserved (null when not an IP)
    "narrowPrefix": pl.String(),  # IPv4 /24, IPv6 /64
    "widePrefix": pl.String(),  # IPv4 /16, IPv6 /48
    "country": pl.String(),  # ISO 3166 alpha-2, null when private/reserved/unknown
    "asn": pl.String(),  # AS organisation name, null when private/reserved/unknown
}

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)

#: The bundled databases, best first (country+ASN+IPv6, then country-only).
GEO_DATA_FILES: tuple[str, ...] = ("geoip2fast-asn-ipv6.dat.gz", "geoip2fast-asn.dat.gz", "geoip2fast.dat.gz")

_cache: dict[str, tuple[Any, ...]] = {}
_lock = threading.Lock()


@functools.cache
def _geo() -> Any | None:
    """Load the geoip2fast database once (about 0.2 s); None when unavailable.

    geoip2fast keeps its tables in module globals, so one process holds one database;
    this module always loads the richest bundled file.
    """
    try:
        from geoip2fast import GeoIP2Fast
    except ImportError:  # optional at run time: lookups then return null country/ASN
        return None
    for name in GEO_DATA_FILES:
        try:
            return GeoIP2Fast(geoip2fast_data_file=name)
        except Exception:  # noqa: BLE001 - the library raises its own bare errors; try the next file
            continue
    return None


def geo_database_info() -> str | None:
    """Name and date of the loaded database, e.g. ``MAXMIND:GeoLite2-CountryASN-IPv4IPv6-en-20240618``."""
    geo = _geo()
    return None if geo is None else str(geo.source_info)


def _classify(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if any(ip in net for net in _PRIVATE_NETWORKS if net.version == ip.version):
        return "private"
    return "public" if ip.is_global and not ip.is_multicast else "reserved"


def _facts(address: str) -> tuple[Any, ...]:
    """One address -> the row of IP_TABLE_SCHEMA (without the address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # service domains, "Internal", scrambled "075.050.255.67", "" ...
        return (False, None, None, None, None, None, None)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    narrow, wide = (24, 16) if ip.version == 4 else (64, 48)
    narrow_prefix = str(ipaddress.ip_network((ip, narrow), strict=False))
    wide_prefix = str(ipaddress.ip_network((ip, wide), strict=False))
    address_class = _classify(ip)
    country = asn = None
    geo = _geo() if address_class == "public" else None
    if geo is not None:
        found = geo.lookup(str(ip))
        # geoip2fast signals "not found"/"private"/"invalid" through special country codes
        code = found.country_code or ""
        country = code if len(code) == 2 and code.isalpha() else None
        asn = found.asn_name or None
    return (True, ip.version, address_class, narrow_prefix, wide_prefix, country, asn)


def ip_table(addresses: Iterable[str | None] | pl.Series) -> pl.DataFrame:
    """Facts about each distinct address, one row per address, sorted by address.

    Parameters
    ----------
    addresses
        Any strings (duplicates and nulls are fine; nulls are dropped).

    Returns
    -------
    pl.DataFrame
        :data:`IP_TABLE_SCHEMA`: ``isIp`` is False for anything that is not a strict IPv4
        or IPv6 literal (then every other fact is null).

    Examples
    --------
    >>> ip_table(["8.8.8.8", "8.8.8.8"]).select("address", "country", "asn").rows()
    [('8.8.8.8', 'US', 'GOOGLE')]
    """
    series = addresses if isinstance(addresses, pl.Series) else pl.Series(list(addresses), dtype=pl.String)
    distinct = series.cast(pl.String).drop_nulls().unique().sort().to_list()
    missing = [a for a in distinct if a not in _cache]
    if missing:
        computed = {a: _facts(a) for a in missing}
        with _lock:
            _cache.update(computed)
    rows = [(a, *_cache[a]) for a in distinct]
    return pl.DataFrame(rows, schema=IP_TABLE_SCHEMA, orient="row")


def parse_networks(networks: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse allow-list entries (CIDRs or single addresses); a bad entry raises ``ValueError``.

    Examples
    --------
    >>> [str(n) for n in parse_networks(["198.51.100.7", "2001:db8::/32"])]
    ['198.51.100.7/32', '2001:db8::/32']
    """
    parsed = []
    for entry in networks:
        try:
            parsed.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as error:
            raise ValueError(f"allow-list network {entry!r} is not a CIDR or an IP address: {error}") from None
    return tuple(parsed)


def in_networks(addresses: Iterable[str | None] | pl.Series, networks: Sequence[str]) -> pl.DataFrame:
    """Which distinct addresses fall inside any of ``networks``.

    Returns
    -------
    pl.DataFrame
        ``address`` (String), ``inNetworks`` (Boolean); non-IP strings are never inside.

    Examples
    --------
    >>> in_networks(["203.0.113.5", "10.0.0.1"], ["203.0.113.0/24"]).rows()
    [('10.0.0.1', False), ('203.0.113.5', True)]
    """
    series = addresses if isinstance(addresses, pl.Series) else pl.Series(list(addresses), dtype=pl.String)
    distinct = series.cast(pl.String).drop_nulls().unique().sort().to_list()
    parsed = parse_networks(networks)
    flags = []
    for address in distinct:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            flags.append(False)
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        flags.append(any(ip.version == net.version and ip in net for net in parsed))
    return pl.DataFrame({"address": distinct, "inNetworks": flags}, schema={"address": pl.String, "inNetworks": pl.Boolean})


def clear_cache() -> None:
    """Forget every cached address (tests; a long-lived process after a database update)."""
    with _lock:
        _cache.clear()
