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
        # out of range: the file, section and key are named
        ("[ip]\nthreshold = -0.5\n", "ip.threshold: must be between 0.0 and 1.0"),
        ("[detect]\nlag_minutes = -5\n", "detect.lag_minutes: must be >= 0"),
        ("[call_rate]\ntimezone = 'Mars/Olympus'\n", "call_rate.timezone: must be an IANA time zone"),
        ("[ip]\nn_estimators = 0\n", "ip.n_estimators: must be >= 1"),
        ("[error_rate]\nbaseline_days = 0\n", "error_rate.baseline_days: must be >= 1"),
        ("[error_rate]\nalpha_start = 0.0\n", "error_rate.alpha_start: must be > 0"),
        ("[ip]\nweight_asn = -1.0\n", "ip.weight_asn: must be >= 0"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{path}: .*" + message.replace("[", r"\[").replace("]", r"\]")):
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


# --------------------------------------------------------------------------- ranges




def test_the_dataclasses_check_their_own_ranges():
    from insights_kit.config import DetectConfig
    from insights_kit.detectors.ip import IpConfig

    with pytest.raises(ValueError, match="learning_hours"):
        DetectConfig(learning_hours=-1)
    with pytest.raises(ValueError, match="threshold"):
        IpConfig(threshold=1.5)
    with pytest.raises(ValueError, match="infrequent_share"):
        IpConfig(frequent_share=0.1, infrequent_share=0.5)


def test_the_defaults_are_in_range():
    cfg = load_config(None)
    assert cfg.ip.threshold == 0.6 and cfg.detect.lag_minutes == 15
