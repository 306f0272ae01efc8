import dataclasses

import pytest

from insights_kit.config import ConfigError, load_allowlist, load_config, to_toml


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = load_config(None)
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    assert load_config(path) == cfg


def test_partial_file_overrides_only_its_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[call_rate]\nbaseline_days = 14\n[ip]\nthreshold = 0.7\n")
    cfg = load_config(path)
    assert cfg.call_rate.baseline_days == 14 and cfg.state_days == 31
    assert cfg.ip.threshold == 0.7
    assert cfg.error_rate == load_config(None).error_rate
    assert dataclasses.is_dataclass(cfg.error_rate)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[detect]\nlearning_hourz = 3\n", "unknown key detect.learning_hourz"),
        ("[nope]\nx = 1\n", "unknown section [nope]"),
        ("[detect]\nlearning_hours = 'a day'\n", "detect.learning_hours must be int"),
        ("[detect\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_allowlist_reads_addresses_cidrs_and_principals(tmp_path):
    path = tmp_path / "allow.txt"
    path.write_text("# office\n203.0.113.0/24\n198.51.100.7  # vpn\nprincipal:276543210987654321\n2001:db8::/32\n\n")
    allow = load_allowlist(path)
    assert allow.networks == ("198.51.100.7/32", "2001:db8::/32", "203.0.113.0/24")
    assert allow.principals == ("276543210987654321",)


def test_allowlist_bad_line_is_an_error_with_its_line_number(tmp_path):
    path = tmp_path / "allow.txt"
    path.write_text("203.0.113.0/24\nnot-an-address\n")
    with pytest.raises(ConfigError, match=r"allow.txt:2"):
        load_allowlist(path)
