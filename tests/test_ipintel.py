"""insights_kit.ipintel: offline address facts."""

from __future__ import annotations

import polars as pl
import pytest

from insights_kit import ipintel


def _row(address: str) -> dict:
    table = ipintel.ip_table([address])
    return table.row(0, named=True)


def test_private_reserved_public_classes():
    assert _row("10.1.9.9")["addressClass"] == "private"
    assert _row("172.20.1.1")["addressClass"] == "private"
    assert _row("100.64.3.4")["addressClass"] == "private"  # CGNAT
    assert _row("203.0.113.77")["addressClass"] == "reserved"  # documentation
    assert _row("224.0.0.1")["addressClass"] == "reserved"  # multicast
    assert _row("8.8.8.8")["addressClass"] == "public"


def test_prefixes_ipv4_and_ipv6():
    row = _row("203.0.113.77")
    assert (row["narrowPrefix"], row["widePrefix"], row["ipVersion"]) == ("203.0.113.0/24", "203.0.0.0/16", 4)
    row = _row("2001:db8:abcd:12:1::5")
    assert (row["narrowPrefix"], row["widePrefix"], row["ipVersion"]) == ("2001:db8:abcd:12::/64", "2001:db8:abcd::/48", 6)
    assert _row("2001:db8::1")["addressClass"] == "reserved"
    assert _row("fd00::1")["addressClass"] == "private"
    # IPv4-mapped IPv6 is the IPv4 address
    assert _row("::ffff:10.1.2.3")["narrowPrefix"] == "10.1.2.0/24"


def test_known_public_country_and_asn():
    if ipintel.geo_database_info() is None:
        pytest.skip("geoip2fast data not available")
    row = _row("8.8.8.8")
    assert row["country"] == "US"
    assert row["asn"] == "GOOGLE"
    assert _row("2001:4860:4860::8888")["country"] == "US"
    # private and reserved addresses are never looked up
    assert _row("10.0.0.1")["country"] is None and _row("10.0.0.1")["asn"] is None


@pytest.mark.parametrize("junk", ["Internal", "AWS Internal", "ecs.aliyuncs.com", "075.050.255.67", "1.2.3.4/24", " 1.2.3.4", ""])
def test_junk_is_not_an_ip(junk):
    row = _row(junk)
    assert row["isIp"] is False
    assert row["addressClass"] is None and row["narrowPrefix"] is None


def test_table_is_distinct_sorted_and_drops_nulls():
    table = ipintel.ip_table(pl.Series(["8.8.8.8", None, "1.1.1.1", "8.8.8.8"]))
    assert table["address"].to_list() == ["1.1.1.1", "8.8.8.8"]
    assert table.schema == pl.Schema(ipintel.IP_TABLE_SCHEMA)


def test_in_networks_cidrs_single_addresses_ipv6():
    flags = ipintel.in_networks(
        ["203.0.113.5", "198.51.100.7", "198.51.100.8", "2001:db8::9", "Internal"],
        ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"],
    )
    assert dict(flags.rows()) == {
        "198.51.100.7": True,
        "198.51.100.8": False,
        "2001:db8::9": True,
        "203.0.113.5": True,
        "Internal": False,
    }


def test_bad_allowlist_entry_raises():
    with pytest.raises(ValueError, match="not-a-network"):
        ipintel.parse_networks(["not-a-network"])
