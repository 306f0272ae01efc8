"""PolicyChangeInsight, PasswordChangeInsight and AkInsight: small frames with known answers, real data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from insights_kit import store
from insights_kit.detect import run_detect
from insights_kit.detectors.ak import AkConfig, AkDetector
from insights_kit.detectors.base import Allowlist, UnitContext
from insights_kit.detectors.password_change import PasswordChangeConfig, PasswordChangeDetector
from insights_kit.detectors.policy_change import PolicyChangeConfig, PolicyChangeDetector
from insights_kit.normalize import RAW_SCHEMA, grants_admin, normalize
from insights_kit.readers import load
from insights_kit.schema import conform

T0 = datetime(2025, 3, 3, tzinfo=timezone.utc)
DAY = 24 * 60
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
OFFICE, OFFICE2, ABROAD = "115.236.21.14", "115.236.21.99", "185.220.101.7"


def _frame(rows: list[dict]) -> pl.LazyFrame:
    """rows: dicts with ``m`` (minutes after T0) and any canonical columns."""
    data = [{"eventTime": T0 + timedelta(minutes=r["m"]), "eventId": str(i), **{k: v for k, v in r.items() if k != "m"}}
            for i, r in enumerate(rows)]
    return conform(pl.DataFrame(data, infer_schema_length=None))


def _ctx(minutes: int, allow: tuple[str, ...] = ()) -> UnitContext:
    return UnitContext("1", "cn-hangzhou", T0, T0 + timedelta(minutes=minutes), T0 + timedelta(hours=24),
                       allowlist=Allowlist(principals=allow))  # fmt: skip


def _history(principal: str, ip: str, ua: str, *, days: int = 3, every: int = 60, **extra) -> list[dict]:
    """A principal's ordinary reads, every ``every`` minutes for ``days`` days."""
    return [{"m": m, "serviceName": "Ecs", "eventName": "DescribeInstances", "principalId": principal,
             "userName": principal, "sourceIpAddress": ip, "userAgent": ua, **extra}
            for m in range(0, days * DAY, every)]  # fmt: skip


def _change(m: int, name: str, principal: str, ip: str, ua: str, service: str = "Ram", **extra) -> dict:
    return {"m": m, "serviceName": service, "eventName": name, "principalId": principal, "userName": principal,
            "sourceIpAddress": ip, "userAgent": ua, **extra}  # fmt: skip


def _policy(rows, minutes=4 * DAY, allow=(), **cfg) -> pl.DataFrame:
    return PolicyChangeDetector(PolicyChangeConfig(**cfg)).detect(_frame(rows), _ctx(minutes, allow))


def _password(rows, minutes=4 * DAY, **cfg) -> pl.DataFrame:
    return PasswordChangeDetector(PasswordChangeConfig(**cfg)).detect(_frame(rows), _ctx(minutes))


# ----------------------------------------------------------------------------- grants_admin


@pytest.mark.parametrize(
    ("request_parameters", "expected"),
    [
        ({"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess", "userName": "x"}, True),
        ({"policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}, False),
        ({"PolicyType": "System", "PolicyName": "AdministratorAccess"}, True),
        ({"policyName": "p", "policyDocument": '{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'}, True),
        ({"PolicyDocument": '{"Statement":[{"Effect":"Allow","Action":["*:*"],"Resource":["*"]}]}'}, True),
        ({"PolicyDocument": {"Statement": [{"Action": "*", "Resource": "*"}]}}, True),  # an object, not a string
        ({"PolicyDocument": '{"Statement":[{"Action":"ecs:Describe*","Resource":"*"}]}'}, False),
        ({"PolicyType": "System", "PolicyName": "AliyunRAMFullAccess"}, True),  # grants itself anything
        ({"policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"}, True),
        ({"PolicyType": "System", "PolicyName": "AliyunECSFullAccess"}, False),
        ({"userName": "bob"}, None),  # names no policy
        (None, None),
    ],
)
def test_grants_admin_reads_managed_names_and_allow_all_documents(request_parameters, expected):
    record = {"eventId": "1", "eventTime": "2025-03-03T00:00:00Z", "eventName": "AttachPolicyToUser"}
    if request_parameters is not None:
        record["requestParameters"] = request_parameters
    raw = pl.read_ndjson(json.dumps(record).encode(), schema=RAW_SCHEMA).with_columns(pl.lit(False).alias("_ct"))
    assert normalize(raw).collect()["grantsAdmin"][0] is expected
    assert isinstance(grants_admin(pl.col("requestParameters")), pl.Expr)


_OWN = "1234567890123456"


def _trust(*principals: str) -> str:
    return json.dumps({"Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": dict(principals)}]})


@pytest.mark.parametrize(
    ("name", "request_parameters", "expected"),
    [
        ("UpdateRole", {"RoleName": "r", "NewAssumeRolePolicyDocument": _trust(("RAM", ["acs:ram::9876543210987654:root"]))},
         True),
        ("UpdateRole", {"NewAssumeRolePolicyDocument": _trust(("RAM", [f"acs:ram::{_OWN}:root"]))}, False),  # own account
        ("CreateRole", {"AssumeRolePolicyDocument": _trust(("Service", ["ecs.aliyuncs.com"]))}, False),  # a service
        ("CreateRole", {"assumeRolePolicyDocument": _trust(("AWS", "arn:aws:iam::210987654321:root"))}, True),
        ("UpdateAssumeRolePolicy", {"policyDocument": _trust(("AWS", "210987654321"))}, True),  # IAM's bare account
        ("UpdateAssumeRolePolicy", {"policyDocument": _trust(("AWS", "*"))}, True),  # anyone
        ("UpdateAssumeRolePolicy", {"policyDocument": '{"Statement":[{"Principal":"*"}]}'}, True),
        # the same document on a permission policy is not a trust policy
        ("CreatePolicyVersion", {"policyDocument": _trust(("AWS", "210987654321"))}, None),
        # mixed: the own account and another one
        ("UpdateRole", {"NewAssumeRolePolicyDocument": _trust(
            ("RAM", [f"acs:ram::{_OWN}:root", "acs:ram::1111222233334444:role/x"]))}, True),
        ("UpdateRole", {"RoleName": "r"}, None),  # sets no trust policy
    ],
)
def test_trusts_outside_reads_the_accounts_a_trust_policy_names(name, request_parameters, expected):
    record = {"eventId": "1", "eventTime": "2025-03-03T00:00:00Z", "eventName": name, "recipientAccountId": _OWN,
              "requestParameters": request_parameters}
    raw = pl.read_ndjson(json.dumps(record).encode(), schema=RAW_SCHEMA).with_columns(pl.lit(False).alias("_ct"))
    assert normalize(raw).collect()["trustsOutside"][0] is expected


# ----------------------------------------------------------------------------- PolicyChangeInsight


def test_a_known_admins_stolen_key_from_abroad_with_a_new_tool_is_raised():
    rows = _history("admin", OFFICE, "aliyuncli/3.0") + [
        _change(m, "AttachPolicyToUser", "admin", OFFICE, "aliyuncli/3.0") for m in range(30, 3 * DAY, DAY)
    ]
    assert _policy(rows).height == 0  # the admin's daily changes are its history
    attack = _change(3 * DAY + 100, "AttachPolicyToUser", "admin", ABROAD, "python-requests/2.28")
    inc = _policy(rows + [attack])
    assert inc.height == 1
    row = inc.row(0, named=True)
    assert (row["insightType"], row["insightObject"]) == ("PolicyChangeInsight", "Ram")
    assert row["startTime"] == T0 + timedelta(minutes=3 * DAY + 100)
    model = json.loads(row["model"])
    assert model["evidence"] == ["newNetwork", "newTool"] and model["score"] == pytest.approx(0.55)


def test_a_colleagues_new_office_address_and_a_first_change_from_the_usual_place_stay_quiet():
    rows = _history("admin", OFFICE, "aliyuncli/3.0") + _history("bob", OFFICE, "AliyunConsole")
    rows += [_change(m, "AttachPolicyToUser", "admin", OFFICE, "aliyuncli/3.0") for m in range(30, 3 * DAY, DAY)]
    rows += [
        _change(3 * DAY + 10, "AttachPolicyToUser", "admin", OFFICE2, "aliyuncli/3.1"),  # same /24, same tool family
        _change(3 * DAY + 20, "AttachPolicyToRole", "bob", OFFICE, "AliyunConsole"),  # first change: 0.3 alone
    ]
    assert _policy(rows).height == 0


def test_an_insiders_first_change_opening_a_role_to_another_account_is_raised():
    # A known user, the usual address, a client never used: 0.5, below the threshold, unless
    # what the change grants tells (admin rights, or a trust for an outside account).
    rows = _history("bob", OFFICE, "AliyunConsole")
    new_client = "aliyun-cli/3.0.16 (darwin; arm64)"
    quiet = [_change(2 * DAY, "AddUserToGroup", "bob", OFFICE, new_client, trustsOutside=None)]
    assert _policy(rows + quiet).height == 0
    door = [_change(2 * DAY, "UpdateRole", "bob", OFFICE, new_client, trustsOutside=True)]
    inc = _policy(rows + door)
    assert inc.height == 1
    model = json.loads(inc["model"][0])
    assert model["evidence"] == ["newChanger", "newTool", "outsideTrust"] and model["score"] == pytest.approx(1.1)
    # a role's trust changed to a cloud service (inside) from the same place stays at 0.5
    service = [_change(2 * DAY, "UpdateRole", "bob", OFFICE, new_client, trustsOutside=False)]
    assert _policy(rows + service).height == 0


def test_an_escalation_starts_at_its_first_step_and_fires_at_its_first_unusual_one():
    rows = _history("bob", OFFICE, "aliyun-cli/3.0.16 (linux)")
    steps = [_change(2 * DAY, "AddUserToGroup", "bob", OFFICE, "aliyun-cli/3.0.16 (darwin)"),  # 0.3: first change
             _change(2 * DAY + 20, "UpdateRole", "bob", OFFICE, "aliyun-cli/3.0.16 (darwin)", trustsOutside=True)]
    inc = _policy(rows + steps)
    assert inc.height == 1
    row = inc.row(0, named=True)
    assert row["startTime"] == T0 + timedelta(minutes=2 * DAY) and row["firedAt"] == T0 + timedelta(minutes=2 * DAY + 20)
    assert row["insightCount"] == 2 and json.loads(row["model"])["evidence"] == ["newChanger", "outsideTrust"]


def test_an_intruders_grants_never_make_the_next_grant_routine():
    # Two stolen-key admin grants from abroad, then the user's own first grant from the office
    # with a client they never used: the intruders' grants are not the user's history.
    rows = _history("bob", OFFICE, "AliyunConsole", days=4)
    attacks = [_change(m, "AttachPolicyToUser", "bob", ABROAD, "curl/8", grantsAdmin=True) for m in (DAY + 600, 2 * DAY)]
    insider = _change(3 * DAY, "AttachPolicyToUser", "bob", OFFICE, "aliyun-cli/3.0", grantsAdmin=True)
    inc = _policy(rows + attacks + [insider])
    assert inc["startTime"].to_list() == [T0 + timedelta(minutes=m) for m in (DAY + 600, 2 * DAY, 3 * DAY)]
    assert "firstAdminGrant" in json.loads(inc["model"][2])["evidence"]


def test_a_first_admin_grant_is_raised_alone_and_becomes_known_once_it_recurs():
    rows = _history("ops", OFFICE, "Terraform/1.6")
    grants = [_change(m, "AttachPolicyToUser", "ops", OFFICE, "Terraform/1.6", grantsAdmin=True)
              for m in (2 * DAY, 2 * DAY + 600, 2 * DAY + 1200)]  # fmt: skip
    inc = _policy(rows + grants)
    # The first incident never feeds the history, so the second grant is a first one again;
    # the third has the second before it.
    assert inc["startTime"].to_list() == [T0 + timedelta(minutes=m) for m in (2 * DAY, 2 * DAY + 600)]
    assert json.loads(inc["model"][0])["evidence"] == ["newChanger", "firstAdminGrant"]


def test_an_intruder_coming_back_with_the_same_tool_is_new_again():
    rows = _history("bob", OFFICE, "aliyuncli/3.0")
    visit = lambda m: [  # noqa: E731
        {"m": m - 5, "serviceName": "Ram", "eventName": "ListUsers", "principalId": "bob", "userName": "bob",
         "sourceIpAddress": OFFICE, "userAgent": "aliyun-cli/3.0.16 (darwin)"},
        _change(m, "UpdateLoginProfile", "bob", OFFICE, "aliyun-cli/3.0.16 (darwin)", requestUserName="frank"),
    ]
    inc = _password(rows + visit(2 * DAY) + visit(3 * DAY), minutes=4 * DAY)
    assert inc["startTime"].to_list() == [T0 + timedelta(minutes=m) for m in (2 * DAY, 3 * DAY)]


def test_an_intruder_coming_back_from_the_same_network_is_new_every_time():
    # A known admin's stolen key: the same foreign address and tool on days 1, 2 and 3. Its
    # network and tool are seen only inside incidents, so they never become familiar, while
    # the admin's own office and tool stay known from its calls outside them.
    rows = _history("alice", OFFICE, "aliyuncli/3.0") + [
        _change(m, "AttachPolicyToUser", "alice", OFFICE, "aliyuncli/3.0") for m in (600, 1800)]
    visits = [_change(d * DAY + 100 + k, "AttachPolicyToUser", "alice", ABROAD, "curl/8.4.0")
              for d in (1, 2, 3) for k in (0, 2)]
    inc = _policy(rows + visits, minutes=4 * DAY, learning_hours=0)
    assert inc["startTime"].to_list() == [T0 + timedelta(minutes=d * DAY + 100) for d in (1, 2, 3)]
    assert [json.loads(m)["evidence"] for m in inc["model"]][2] == ["newNetwork", "newTool"]


def test_a_burst_of_changes_by_a_known_changer_is_raised():
    rows = _history("ci", OFFICE, "Terraform/1.6")
    rows += [_change(m, "CreatePolicyVersion", "ci", OFFICE, "Terraform/1.6") for m in range(60, 3 * DAY, DAY)]
    assert _policy(rows).height == 0
    burst = [_change(3 * DAY + 60 + i // 3, "CreatePolicyVersion", "ci", OFFICE, "Terraform/1.6") for i in range(30)]
    inc = _policy(rows + burst)
    assert inc.height == 1 and "burst" in json.loads(inc["model"][0])["evidence"]
    # the session is the incident from its first change; the Start fires at the 10th (burst_min)
    assert inc["insightCount"][0] == 30
    assert inc["startTime"][0] == T0 + timedelta(minutes=3 * DAY + 60)
    assert inc["firedAt"][0] == T0 + timedelta(minutes=3 * DAY + 60 + 9 // 3)
    assert _policy(rows + burst, burst_min=40).height == 0


def test_learning_period_allowlist_and_denied_changes():
    stranger = [_change(100, "AttachPolicyToUser", "eve", ABROAD, "curl/8"),
                _change(3 * DAY, "AttachPolicyToUser", "mallory", ABROAD, "curl/8")]  # fmt: skip
    rows = _history("admin", OFFICE, "cli") + stranger
    inc = _policy(rows)
    assert inc["startTime"].to_list() == [T0 + timedelta(minutes=3 * DAY)]  # minute 100 is in the 12 h learning
    assert _policy(rows, allow=("mallory",)).height == 0
    assert _policy(rows, allowed_principals=("mallory",)).height == 0
    denied = [dict(r, errorCode="NoPermission") for r in stranger]
    assert _policy(_history("admin", OFFICE, "cli") + denied).height == 0  # a denial changed nothing


def test_the_start_does_not_depend_on_later_calls():
    rows = _history("admin", OFFICE, "cli")
    attack = [_change(3 * DAY + 10, "AttachPolicyToUser", "eve", ABROAD, "curl/8"),
              _change(3 * DAY + 12, "AddUserToGroup", "mallory", ABROAD, "curl/8")]  # fmt: skip
    cut = _policy(rows + attack[:1], minutes=3 * DAY + 11)
    whole = _policy(rows + attack)
    assert cut["startTime"].to_list() == whole["startTime"].to_list()
    assert cut["model"].to_list() == whole["model"].to_list()
    assert cut["endTime"][0] is None and whole["insightCount"][0] == 2


# ----------------------------------------------------------------------------- PasswordChangeInsight


def test_own_password_change_is_quiet_and_another_users_login_profile_is_raised():
    rows = _history("alice", OFFICE, "AliyunConsole") + _history("bob", OFFICE, "aliyuncli/3.0")
    own = _change(3 * DAY, "ChangePassword", "alice", OFFICE, "AliyunConsole", requestUserName="alice")
    takeover = _change(3 * DAY + 5, "UpdateLoginProfile", "bob", OFFICE, "aliyun-cli-darwin/3", requestUserName="frank")
    assert _password(rows + [own]).height == 0
    inc = _password(rows + [own, takeover])
    assert inc.height == 1 and inc["insightType"][0] == "PasswordChangeInsight"
    assert json.loads(inc["model"][0])["evidence"] == ["newChanger", "newTool", "otherUser"]


def test_access_keys_count_only_when_made_for_another_user():
    rows = _history("bob", OFFICE, "cli")
    own_key = _change(3 * DAY, "CreateAccessKey", "bob", ABROAD, "curl/8", requestUserName="bob")
    assert _password(rows + [own_key]).height == 0  # not a credential change of another user
    other = _change(3 * DAY, "CreateAccessKey", "bob", ABROAD, "curl/8", requestUserName="backdoor")
    assert _password(rows + [other]).height == 1


# ----------------------------------------------------------------------------- AkInsight


def _ak(rows, minutes=4 * DAY, **cfg) -> pl.DataFrame:
    return AkDetector(AkConfig(**cfg)).detect(_frame(rows), _ctx(minutes))


def test_a_never_seen_key_from_a_network_its_owner_does_not_use_is_raised():
    rows = _history("bob", OFFICE, "cli", accessKeyId="LTAIold")
    stolen = [{"m": 3 * DAY + i, "serviceName": "Ecs", "eventName": "DescribeRegions", "principalId": "bob",
               "sourceIpAddress": ABROAD, "userAgent": "curl/8", "accessKeyId": "LTAInew"} for i in range(5)]  # fmt: skip
    inc = _ak(rows + stolen)
    assert inc.height == 1
    row = inc.row(0, named=True)
    assert (row["insightObject"], row["insightCount"]) == ("LTAInew", 5)
    assert json.loads(row["model"])["rule"].startswith("first use")


def test_a_rotated_key_from_the_usual_address_and_temporary_keys_stay_quiet():
    rows = _history("bob", OFFICE, "cli", accessKeyId="LTAIold")
    rotated = [{"m": 3 * DAY + i, "serviceName": "Ecs", "eventName": "DescribeInstances", "principalId": "bob",
                "sourceIpAddress": OFFICE2, "userAgent": "cli", "accessKeyId": "LTAIrotated"} for i in range(50)]
    sts = [{"m": 3 * DAY + i, "serviceName": "Ecs", "eventName": "DescribeInstances", "principalId": "role:s",
            "sourceIpAddress": ABROAD, "userAgent": "sdk", "accessKeyId": "STS.temp"} for i in range(50)]  # fmt: skip
    assert _ak(rows + rotated + sts).height == 0


def test_a_new_colleagues_first_key_from_the_office_is_quiet():
    rows = _history("bob", OFFICE, "cli", accessKeyId="LTAIbob")
    newbie = [{"m": 3 * DAY + i, "serviceName": "Ecs", "eventName": "DescribeInstances", "principalId": "carol",
               "sourceIpAddress": OFFICE2, "userAgent": "sdk", "accessKeyId": "LTAIcarol"} for i in range(5)]  # fmt: skip
    assert _ak(rows + newbie).height == 0


def test_a_known_key_far_above_its_own_rate_is_raised_by_the_rate_rule():
    rows = _history("bob", OFFICE, "cli", days=4, every=20, accessKeyId="LTAIbob")
    burst = [{"m": 3 * DAY + 600 + i // 40, "serviceName": "Ecs", "eventName": "DescribeDisks", "principalId": "bob",
              "sourceIpAddress": OFFICE, "userAgent": "cli", "accessKeyId": "LTAIbob"} for i in range(40 * 20)]  # fmt: skip
    inc = _ak(rows + burst)
    assert inc.height == 1
    row = inc.row(0, named=True)
    assert row["insightObject"] == "LTAIbob" and row["startTime"] == T0 + timedelta(minutes=3 * DAY + 600)
    assert json.loads(row["model"])["rule"] == "rate" and row["insightCount"] >= 800
    assert row["firedAt"] == row["startTime"] + timedelta(minutes=5)  # sustained 6 minutes, then raised
    spike = [r for r in burst if r["m"] < 3 * DAY + 603]  # a three-minute refresh-like spike
    assert _ak(rows + spike).height == 0
    young = [dict(r, accessKeyId="LTAIyoung") for r in burst]  # too young for a pattern: no rate rule
    assert _ak(_history("bob", OFFICE, "cli", days=4, every=20, accessKeyId="LTAIbob") + young).height == 0


def test_a_key_burst_across_the_hour_is_found_whole():
    # 40 calls a minute from 10:57 for 20 minutes. The burst's first three minutes raise the
    # 11:00 hour's recent level; unmasked, they end the run at three minutes and the rest of the
    # burst looks normal (the old rule missed it).
    rows = _history("bob", OFFICE, "cli", days=4, every=20, accessKeyId="LTAIbob")
    onset = 3 * DAY + 657
    burst = [{"m": onset + i // 40, "serviceName": "Ecs", "eventName": "DescribeDisks", "principalId": "bob",
              "sourceIpAddress": OFFICE, "userAgent": "cli", "accessKeyId": "LTAIbob"} for i in range(40 * 20)]  # fmt: skip
    inc = _ak(rows + burst)
    assert inc.height == 1, inc
    row = inc.row(0, named=True)
    assert row["startTime"] == T0 + timedelta(minutes=onset) and row["endTime"] == T0 + timedelta(minutes=onset + 20)
    assert 800 <= row["insightCount"] <= 801  # the burst and bob's one routine call in it


# ----------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (REALDATA / "sans504-s3-ransomware").is_dir(), reason="../shared/realdata absent")
def test_sans_intruder_policy_write_and_keys(tmp_path):
    """jmerckle (never seen, 3.238.12.183) writes an admin user policy at 13:06:49Z and makes a key."""
    run_detect([REALDATA / "sans504-s3-ransomware"], tmp_path / "out")
    starts = store.read_events(tmp_path / "out").filter(pl.col("state") == "Start")
    policy = starts.filter(pl.col("insightType") == "PolicyChangeInsight")
    assert policy.select("insightObject", "eventTime").rows() == [("iam", datetime(2021, 7, 29, 13, 6, tzinfo=timezone.utc))]
    keys = starts.filter(pl.col("insightType") == "AkInsight").sort("eventTime")
    # the intruder's key (13:02) and the key it created (first used 13:11), not the operator's keys
    assert keys["insightObject"].to_list() == ["AKIAU7JNXC7K7XNL3F6J", "AKIAU7JNXC7KZLY6XYHJ"]
    assert starts.filter(pl.col("insightType") == "PasswordChangeInsight").height == 0


@pytest.fixture(scope="module")
def quiet_day() -> pl.DataFrame:
    """SANS 504 before the intrusion: 21 hours of the operator's and AWS services' calls."""
    baseline = load([REALDATA / "sans504-s3-ransomware"]).events.collect()
    return baseline.filter(pl.col("eventTime") < datetime(2021, 7, 29, 12, 50, tzinfo=timezone.utc))


NEW_TYPES = ["AkInsight", "PolicyChangeInsight", "PasswordChangeInsight", "TrailConcealmentInsight"]


@pytest.fixture(scope="module")
def quiet_baseline(tmp_path_factory, quiet_day) -> Path:
    """The baseline as a Parquet folder; alone it raises none of the four new types."""
    base = tmp_path_factory.mktemp("baseline")
    quiet_day.drop("sourceFormat", "sourceFile").write_parquet(base / "base.parquet")
    run_detect([base], base.parent / "quiet")
    assert store.read_events(base.parent / "quiet").filter(pl.col("insightType").is_in(NEW_TYPES)).height == 0
    return base


@pytest.mark.skipif(not (REALDATA / "stratus-detonation-logs").is_dir(), reason="../shared/realdata absent")
@pytest.mark.parametrize(
    ("technique", "expected"),
    [("persistence.iam-create-admin-user", "PolicyChangeInsight"),
     ("persistence.iam-backdoor-user", "PasswordChangeInsight"),
     ("persistence.iam-create-user-login-profile", "PasswordChangeInsight"),
     ("privilege-escalation.iam-update-user-login-profile", "PasswordChangeInsight")],  # fmt: skip
)
def test_stratus_identity_techniques_spliced_into_a_quiet_sans_day(tmp_path, quiet_day, quiet_baseline, technique,
                                                                    expected):  # fmt: skip
    records = json.loads((REALDATA / "stratus-detonation-logs" / f"aws.{technique}.json").read_text())
    records = records["Records"] if isinstance(records, dict) else records
    at = quiet_day["eventTime"].max() + timedelta(hours=2)
    account = quiet_day["recipientAccountId"].drop_nulls()[0]
    first = min(datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")) for r in records)
    for r in records:
        r["eventTime"] = (at + (datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")) - first)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        # IAM is global: recorded in us-east-1 (Stratus scrambles regions), analysed in the home region
        r["awsRegion"], r["recipientAccountId"] = "us-east-1", account
    (tmp_path / "attack.json").write_text(json.dumps({"Records": records}))
    run_detect([quiet_baseline, tmp_path / "attack.json"], tmp_path / "out")
    found = store.read_events(tmp_path / "out").filter(
        pl.col("insightType").is_in(NEW_TYPES) & (pl.col("state") == "Start")
    )
    assert (expected, "iam") in found.select("insightType", "insightObject").rows()
    # Whatever else the technique raises (the admin user's new key is also a credential
    # change of another user; the never-seen key of a never-seen user is an AkInsight)
    # starts in the technique's first minute: nothing from the baseline.
    assert set(found["eventTime"]) == {at.replace(second=0, microsecond=0)}
