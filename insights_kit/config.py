"""One TOML file holds every threshold of every detector.

``insights-kit config`` prints the defaults as TOML with their documentation; a user's file only
needs the keys it changes. Unknown keys are an error (a typo must not silently keep a default).

Sections: ``[detect]`` (run-wide settings, :class:`DetectConfig`), ``[call_rate]``,
``[error_rate]``, ``[ip]`` (the detectors' own frozen dataclasses).

Examples
--------
>>> cfg = load_config(None)
>>> cfg.call_rate.baseline_days
7
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insights_kit.detectors.base import Allowlist
from insights_kit.schema import ACTIONTRAIL_INSIGHT_TYPES, INSIGHT_TYPES
from insights_kit.validate import check_range, check_rate_config, check_region_name


@dataclass(frozen=True)
class DetectConfig:
    """Run-wide detection settings.

    Parameters
    ----------
    learning_hours : int, default 24
        A unit's first hours are learning only (ActionTrail: first insight after 24 h).
        Must be >= 0 (0: no learning period).
    lag_minutes : int, default 15
        Each run re-reads this margin before ``--since``: ActionTrail delivers within about
        10 minutes, so the previous window's last files may land after its run. Must be >= 0.
    home_region : str, default ""
        Region that analyses global events; empty = the region with the most events.
        Otherwise a region id matching ``^[a-z0-9-]{1,63}$``. A ``--state`` folder records the
        home region of its first run; a later run naming another one is an error unless it
        asks to move it (``--change-home-region``).
    notify_url : str, default ""
        A webhook to which a run that emits new Start events posts them (``--notify`` overrides);
        empty = no alert. Undelivered messages go to ``OUT/notify-dead-letter.jsonl``.
    notify_format : str, default "generic"
        ``generic`` (the Start events as JSON), ``dingtalk`` or ``slack`` (chat robots).
    notify_retries : int, default 3
        Retries after a failed delivery (connection error, timeout, 429, 5xx), with backoff
        1, 2, 4 ... s (0 to 10); then the message goes to the dead-letter file.
    lock_timeout_seconds : int, default 300
        How long a ``--state`` run waits for another run on the same state to finish before
        it gives up with one line (exit 1); 0 = do not wait (0 to 86400).
    allowlist_file : str, default ""
        Allow-list of addresses/CIDRs and ``principal:<id>`` lines that never raise IpInsight
        (principals are also never raised by TrailConcealmentInsight).
    insight_types : tuple of str, default all that insights-kit builds
        The insight selector (ActionTrail's ``PutInsightSelectors``): which types are
        analysed; default all seven. An unknown name is an error.
    """

    learning_hours: int = 24
    lag_minutes: int = 15
    home_region: str = ""
    lock_timeout_seconds: int = 300
    notify_url: str = ""
    notify_format: str = "generic"
    notify_retries: int = 3
    allowlist_file: str = ""
    insight_types: tuple[str, ...] = INSIGHT_TYPES

    def __post_init__(self) -> None:
        check_range("learning_hours", self.learning_hours, low=0)
        check_range("lag_minutes", self.lag_minutes, low=0)
        check_range("lock_timeout_seconds", self.lock_timeout_seconds, low=0, high=86400)
        check_range("notify_retries", self.notify_retries, low=0, high=10)
        if self.notify_format not in ("generic", "dingtalk", "slack"):
            raise ValueError(f"notify_format: expected generic, dingtalk or slack, got {self.notify_format!r}")
        if self.notify_url and not self.notify_url.startswith(("http://", "https://")):
            raise ValueError("notify_url: expected an http:// or https:// URL")
        if self.home_region:
            check_region_name(self.home_region)
        for name in self.insight_types:
            if name not in ACTIONTRAIL_INSIGHT_TYPES:
                raise ValueError(f"unknown insight type {name!r} (known: {', '.join(INSIGHT_TYPES)})")


def _section_factories() -> dict[str, Any]:
    # Imported lazily: each detector module owns its config dataclass.
    from insights_kit.detectors.call_rate import CallRateConfig
    from insights_kit.detectors.error_rate import ErrorRateConfig
    from insights_kit.detectors.ip import IpConfig
    from insights_kit.detectors.trail_concealment import TrailConcealmentConfig
    from insights_kit.detectors.ak import AkConfig
    from insights_kit.detectors.password_change import PasswordChangeConfig
    from insights_kit.detectors.policy_change import PolicyChangeConfig

    return {
        "detect": DetectConfig,
        "call_rate": CallRateConfig,
        "error_rate": ErrorRateConfig,
        "ip": IpConfig,
        "ak": AkConfig,
        "policy_change": PolicyChangeConfig,
        "password_change": PasswordChangeConfig,
        "trail_concealment": TrailConcealmentConfig,
    }


#: The detector sections of a config file, in the order ``insights-kit config`` prints them.
DETECTOR_SECTIONS = ("call_rate", "error_rate", "ip", "ak", "policy_change", "password_change", "trail_concealment")


@dataclass(frozen=True)
class Config:
    """All settings of a run; each attribute is one TOML section."""

    detect: Any = field(default_factory=DetectConfig)
    call_rate: Any = None
    error_rate: Any = None
    ip: Any = None
    ak: Any = None
    policy_change: Any = None
    password_change: Any = None
    trail_concealment: Any = None

    def __post_init__(self) -> None:
        factories = _section_factories()
        for name in DETECTOR_SECTIONS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, factories[name]())
        for name in ("call_rate", "error_rate", "ak"):
            # Their dataclasses live in detectors/_rate.py; checked here so that every
            # Config, however built, has sane rate-model ranges.
            check_rate_config(getattr(self, name))

    @property
    def state_days(self) -> int:
        """Days of events kept in ``--state``: enough for every detector's history."""
        return max(self.call_rate.baseline_days, self.error_rate.baseline_days, self.ip.history_days) + 1


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and key."""


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config; missing keys keep their documented defaults."""
    if path is None or str(path) == "":
        return Config()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, origin=str(path))


def config_from_dict(data: dict[str, Any], *, origin: str = "config") -> Config:
    factories = _section_factories()
    sections: dict[str, Any] = {}
    for name, values in data.items():
        if name not in factories:
            raise ConfigError(f"{origin}: unknown section [{name}] (known: {', '.join(factories)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{name}] must be a table")
        default = factories[name]()
        known = {f.name: f for f in dataclasses.fields(default)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{origin}: unknown key {name}.{key} (known: {', '.join(sorted(known))})")
            expected = type(getattr(default, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                values[key] = float(value)
            elif expected is tuple and isinstance(value, list):
                values[key] = tuple(value)
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(
                    f"{origin}: {name}.{key} must be {expected.__name__}, got {type(value).__name__}"
                )
        sections[name] = _replace_checked(default, values, origin=origin, section=name)
    return Config(**sections)


def _replace_checked(default: Any, values: dict[str, Any], *, origin: str, section: str) -> Any:
    """``dataclasses.replace`` whose range errors name the file, section and key."""
    try:
        merged = dataclasses.replace(default, **values)
        if section in ("call_rate", "error_rate"):
            check_rate_config(merged)
    except (ValueError, TypeError) as exc:
        # The checks' messages start with the field name: "threshold must be ...".
        key, _, rest = str(exc).partition(" ")
        if hasattr(default, key) and rest:
            raise ConfigError(f"{origin}: {section}.{key}: {rest}") from None
        raise ConfigError(f"{origin}: [{section}]: {exc}") from None
    return merged


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(config: Config) -> str:
    """The whole config as TOML (what ``insights-kit config`` prints)."""
    lines = ["# insights-kit configuration: every key shown with its value; see docs/detectors.md"]
    for section in ("detect", *DETECTOR_SECTIONS):
        lines += ["", f"[{section}]"]
        obj = getattr(config, section)
        for f in dataclasses.fields(obj):
            lines.append(f"{f.name} = {_toml_value(getattr(obj, f.name))}")
    return "\n".join(lines) + "\n"


def load_allowlist(path: str | Path | None) -> Allowlist:
    """Read an allow-list: one address, CIDR or ``principal:<principalId>`` per line; ``#`` comments.

    A bad line is an error naming its line number: an allow-list is security-relevant
    (attackers add themselves to trusted lists), so it must never be half-read.
    """
    if path is None or str(path) == "":
        return Allowlist()
    networks: list[str] = []
    principals: list[str] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if entry.startswith("principal:"):
            principal = entry.removeprefix("principal:").strip()
            if not principal:
                raise ConfigError(f"{path}:{number}: empty principal")
            principals.append(principal)
            continue
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ConfigError(f"{path}:{number}: not an address, CIDR or principal:<id>: {entry!r}") from None
    return Allowlist(networks=tuple(sorted(set(networks))), principals=tuple(sorted(set(principals))))
