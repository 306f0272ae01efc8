"""Identity incidents and look-alikes of the simulator: PolicyChange, PasswordChange and Ak insights."""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from insights_kit import scenarios as sc
from insights_kit.simulate import simulate

DAYS, SCALE = 7, 0.01
SEEDS = (7, 4)
IDENTITY_TYPES = {"PolicyChangeInsight", "PasswordChangeInsight", "AkInsight"}
LOOKALIKES = {"policy_release", "password_rotation", "key_rotation"}
DAY0 = int(datetime(2025, 3, 3, tzinfo=timezone.utc).timestamp())  # simulate's default start (a Monday)

#: incident_plan(7, 13) as it was before the identity incidents were added (must not change).
PLAN_7_13 = [
    (0, 3, "quiet_recon", "cn-shanghai", 570, "carol-sdk", "196.251.80.74", "aliyun-sdk-js/6.21.0"),
    (1, 4, "runaway_automation", "cn-beijing", 983, "ops-automation", None, None),
    (2, 4, "leaked_key_teardown", "ap-southeast-1", 997, "carol-sdk", "185.220.102.12", "python-requests/2.28.1"),
    (3, 5, "trail_tampering", "cn-hangzhou", 961, "ci-deployer", "193.32.162.52",
     "aliyun-python-sdk-core/2.13.10 python/3.8.10"),
    (4, 6, "permission_probing", "cn-shanghai", 130, "grafana-reader", "80.82.77.34",
     "aliyun-cli/3.0.16 (darwin; arm64)"),
    (5, 7, "throttling_storm", "cn-beijing", 578, "carol-sdk", None, None),
    (6, 9, "quiet_recon", "ap-southeast-1", 238, "bob-cli", "196.251.80.10",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 curl-impersonate"),
    (7, 11, "throttling_storm", "cn-hangzhou", 395, "dave-sdk", None, None),
    (8, 13, "trail_tampering", "cn-shanghai", 574, "ops-automation", "193.32.162.161",
     "aliyun-python-sdk-core/2.13.10 python/3.8.10"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, tuple[dict, list[dict]]]:
    """Per seed: labels.json and every written record."""
    out = {}
    for seed in SEEDS:
        root = tmp_path_factory.mktemp(f"id{seed}")
        simulate(root, days=DAYS, seed=seed, scale=SCALE, progress=False)
        records = [json.loads(line) for f in sorted((root / "AliyunLogs").rglob("*.gz"))
                   for line in gzip.decompress(f.read_bytes()).decode().splitlines()]
        out[seed] = (json.loads((root / "labels.json").read_text()), records)
    return out


def _slot_events(seed: int, max_day: int = 40):
    account = sc.build_account(seed)
    for slot in sc.identity_plan(seed, max_day):
        frame, specs = sc.identity_events(slot, account, DAY0 + slot.day * 86400)
        yield account, slot, frame, specs


def test_existing_incident_plan_is_unchanged():
    assert [tuple(vars(s).values()) for s in sc.incident_plan(7, 13)] == PLAN_7_13


def test_identity_plan_is_a_prefix_with_new_foreign_addresses():
    old_prefixes = {p for group in sc.FOREIGN_PREFIXES.values() for p in group}
    old_agents = {u for group in sc.FOREIGN_USER_AGENTS.values() for u in group}
    for seed in (1, 7, 13):
        account = sc.build_account(seed)
        short, long = sc.identity_plan(seed, 6), sc.identity_plan(seed, 40)
        assert long[: len(short)] == short and len(short) == 4
        assert {s.scenario for s in short} == set(sc.IDENTITY_SCENARIOS)
        assert [s.day for s in short] == [3, 4, 5, 6] and [s.day for s in long[4:7]] == [8, 10, 12]
        assert sc.identity_plan(seed, 2) == []
        ips = [s.ip for s in long if s.ip]
        assert len(ips) == len(set(ips))
        known = {a.ip.rsplit(".", 1)[0] for ch in account.channels.values() for a in ch.addresses}
        for s in long:
            assert 60 <= s.minute < 17 * 60
            channel = account.channels[s.actor]
            if s.scenario in ("privilege_escalation", "login_takeover"):
                assert s.region == account.home_region and s.variant in ("foreign", "insider")
            if s.scenario == "key_rate_burst":
                assert s.region in dict(channel.region_weights) and s.ip is None
            if s.variant == "insider":
                assert s.ip is None and s.user_agent not in {u for u, _ in channel.user_agents}
            if s.ip:
                prefix = s.ip.rsplit(".", 1)[0]
                assert prefix not in old_prefixes and prefix not in known
                assert s.user_agent not in old_agents


def test_intensities_shapes_and_admin_grants():
    admin = {True: 0, False: 0}
    variants = set()
    for seed in range(1, 7):
        for account, slot, frame, specs in _slot_events(seed):
            channel = account.channels[slot.actor]
            variants.add((slot.scenario, slot.variant))
            # the new type's label is expected; IpInsight for a handful of calls only "may" be
            assert frame["tag"].n_unique() == 1 and specs[0].expect == "insight"
            assert {s.expect for s in specs if s.type == "IpInsight"} <= {"may"}
            main = specs[0]
            extra = main.extra
            rows = frame.filter(pl.col("tag") == main.tag)
            for column, value in main.match.items():
                rows = rows.filter(pl.col(column).is_in(list(value)) if isinstance(value, tuple)
                                   else pl.col(column) == value)
            assert rows.height > 0 and set(rows["acsRegion"]) == {main.region}
            ip_specs = [s for s in specs if s.type == "IpInsight"]
            assert bool(ip_specs) == (slot.ip is not None)
            if slot.scenario == "privilege_escalation":
                assert main.type == "PolicyChangeInsight" and main.object == "Ram"
                assert 1 <= extra["changes"] <= 6 and 1 <= extra["span_minutes"] <= 60 and 3 <= extra["reads"] <= 12
                assert rows.height == extra["changes"] and set(rows["eventName"]) <= set(sc.POLICY_CHANGE_APIS)
                assert rows["t"].max() - rows["t"].min() <= extra["span_minutes"] * 60
                # the change rows come after the reads: the label starts at the first change
                assert frame.filter(pl.col("requestParameters").is_null())["t"].max() < rows["t"].min()
                admin[extra["admin_grant"]] += 1
                assert extra["admin_grant"] == rows["requestParameters"].str.contains("AdministratorAccess").any()
            elif slot.scenario == "login_takeover":
                assert main.type == "PasswordChangeInsight" and main.object == "Ram"
                assert 1 <= extra["changes"] <= 3 and 1 <= extra["span_minutes"] <= 30
                assert rows.height == extra["changes"] + extra["mfa_unbound"]
                targets = {json.loads(p)["UserName"] for p in rows["requestParameters"]}
                assert targets == {extra["target_user"]} and extra["target_user"] != channel.identity.user_name
            elif slot.scenario == "new_key_abuse":
                assert main.type == "AkInsight" and main.object.startswith("LTAI5t") and len(main.object) == 24
                assert main.object != channel.identity.access_key and main.region == slot.region
                assert 5 <= extra["calls"] <= 40 and 5 <= extra["span_minutes"] <= 60 and extra["writes"] <= 3
                assert rows.height == extra["calls"] and set(rows["principalId"]) == {channel.identity.principal_id}
                assert set(rows["sourceIpAddress"]) == {slot.ip} and ip_specs[0].region == slot.region
                created = frame.filter(pl.col("eventName") == "CreateAccessKey")
                assert created.height == (slot.variant == "created")
                if created.height:
                    assert created["accessKeyId"].to_list() == [channel.identity.access_key]
                    assert created["acsRegion"].to_list() == [account.home_region]
                    assert json.loads(created["requestParameters"][0]) == {"UserName": channel.identity.user_name}
            else:
                assert main.type == "AkInsight" and main.object == channel.identity.access_key
                assert 15 <= extra["rate"] <= 120 and 15 <= extra["minutes"] <= 60
                assert frame["errorCode"].is_null().all()
                assert set(frame["sourceIpAddress"]) <= {a.ip for a in channel.addresses if a.first_day == 0}
                assert set(frame["userAgent"]) == {channel.user_agents[0][0]}
                assert all(sc.APIS[n].rw == "Read" for n in frame["eventName"].unique())
    assert admin[True] > 0 and admin[False] > 0
    assert {("privilege_escalation", "foreign"), ("privilege_escalation", "insider"), ("new_key_abuse", "created"),
            ("new_key_abuse", "preexisting")} <= variants


@pytest.mark.parametrize("seed", SEEDS)
def test_every_identity_label_is_measured(runs, seed):
    labels, _ = runs[seed]
    account = sc.build_account(seed)
    expected = [spec for slot in sc.identity_plan(seed, DAYS - 1)
                for spec in sc.identity_events(slot, account, DAY0 + slot.day * 86400)[1]]
    got = [e for e in labels["incidents"] if e["scenario"] in sc.IDENTITY_SCENARIOS]
    assert len(got) == len(expected) >= 5
    assert sorted((e["type"], e["object"]) for e in got) == sorted((s.type, s.object) for s in expected)
    for entry in got:
        assert entry["expect"] == ("may" if entry["type"] == "IpInsight" else "insight")
        assert entry["start"] <= entry["end"] and entry["events"] > 0
        assert entry["start"] >= "2025-03-06"  # day 3
        if entry["type"] in ("PolicyChangeInsight", "PasswordChangeInsight"):
            assert entry["region"] == labels["home_region"] and entry["object"] == "Ram"
            assert {"changes", "span_minutes", "variant"} <= set(entry) and entry["note"]


@pytest.mark.parametrize("seed", SEEDS)
def test_request_parameters_are_json_objects(runs, seed):
    labels, records = runs[seed]
    with_params = [r for r in records if "requestParameters" in r]
    assert with_params and all(isinstance(r["requestParameters"], dict) for r in with_params)
    names = {r["eventName"] for r in with_params}
    assert {"CreatePolicyVersion", "ChangePassword", "CreateAccessKey", "DeleteAccessKey"} <= names
    assert not {"DescribeInstances", "StopInstance", "ConsoleSignin"} & names  # older episodes: none
    for r in with_params:
        params, user = r["requestParameters"], r["userIdentity"]["userName"]
        if r["eventName"] == "AttachPolicyToUser":
            assert params["PolicyType"] == "System" and params["PolicyName"] in sc.ADMIN_POLICIES
            assert params["UserName"] in sc.ACCOUNT_USERS
        elif r["eventName"] == "CreatePolicyVersion":
            document = json.loads(params["PolicyDocument"])  # a JSON *string*, like RAM sends it
            assert params["SetAsDefault"] == "true" and document["Statement"][0]["Effect"] == "Allow"
            if r["userIdentity"]["type"] == "assumed-role":  # the release pipeline: never admin
                assert document["Statement"][0]["Action"] != "*"
        elif r["eventName"] in ("CreateLoginProfile", "UpdateLoginProfile"):
            assert params["UserName"] != user and params["PasswordResetRequired"] is False
        elif r["eventName"] == "ChangePassword":
            assert params == {"UserName": user}
        elif r["eventName"] == "CreateAccessKey":
            assert set(params) == {"UserName"}
        if r["eventName"] in ("AttachPolicyToUser", "CreatePolicyVersion", "UpdateRole", "ChangePassword"):
            assert r["isGlobal"] and r["acsRegion"] == labels["home_region"] and r["eventAttributes"]


def test_lookalikes_are_labelled_none(runs):
    for seed in SEEDS:
        labels, records = runs[seed]
        benign = [e for e in labels["incidents"] if e["scenario"] in LOOKALIKES]
        assert {e["scenario"] for e in benign} == LOOKALIKES
        assert all(e["expect"] == "none" and e["events"] > 0 and e["start"] >= "2025-03-04" for e in benign)
        kinds = {(e["scenario"], e["type"]) for e in benign}
        assert kinds == {("policy_release", "PolicyChangeInsight"), ("password_rotation", "PasswordChangeInsight"),
                         ("key_rotation", "AkInsight")}
        rotation = [e for e in benign if e["scenario"] == "password_rotation"]
        assert len(rotation) == 2 and {e["start"][:10] for e in rotation} == {"2025-03-05"}  # day 2
        new_key = {e["object"] for e in benign if e["scenario"] == "key_rotation"}
        assert len(new_key) == 1
        used = [r for r in records if r["userIdentity"].get("accessKeyId") in new_key]
        assert 60 <= len({r["eventId"] for r in used}) <= 180
        assert {r["sourceIpAddress"] for r in used} == {"172.16.8.30"}
        assert {e["region"] for e in benign if e["scenario"] == "key_rotation"} == {r["acsRegion"] for r in used}
        # policy_release runs from day 0 (history) but is labelled from day 1 on
        releases = {r["eventTime"][:10] for r in records if r["userIdentity"]["type"] == "assumed-role"
                    and r["eventName"] in ("CreatePolicyVersion", "SetDefaultPolicyVersion", "AttachPolicyToRole")}
        assert "2025-03-03" in releases  # day 0, a Monday
        assert min(e["start"] for e in benign if e["scenario"] == "policy_release") >= "2025-03-04"


def test_short_runs_have_no_identity_incidents(tmp_path):
    simulate(tmp_path, days=3, seed=2, scale=0.005, progress=False, start=date(2025, 3, 3))
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert not [e for e in labels["incidents"] if e["scenario"] in sc.IDENTITY_SCENARIOS]
    assert np.all([e["expect"] == "none" for e in labels["incidents"]])
