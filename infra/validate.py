"""Reading untyped config values with errors that name the key (`pgbackup:databases[0].schedule`)
and say how to fix them. Pulumi types only the top level of the config, so every nested field is
checked here."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NoReturn
from urllib.parse import urlsplit

from jobs.errors import ExitCode, PgBackupError


class ConfigError(PgBackupError):
    """An invalid stack configuration value; the message starts with the key at fault."""

    def __init__(self, message: str, fix: str, *, not_found: bool = False) -> None:
        super().__init__(message, fix, ExitCode.NOT_FOUND if not_found else ExitCode.CONFIG)


class Reader:
    """A mapping of config values at a known key path."""

    def __init__(self, raw: Any, path: str, *, top: bool = False) -> None:
        self.path = path
        self.top = top
        if not isinstance(raw, Mapping):
            self._fail_self(f"is {_kind(raw)}, not an object", "write it as a YAML mapping")
        self.raw: Mapping[str, Any] = raw

    def key(self, key: str) -> str:
        return f"{self.path}{key}" if self.top else f"{self.path}.{key}"

    def fail(self, key: str, problem: str, fix: str) -> NoReturn:
        raise ConfigError(f"{self.key(key)}: {problem}", fix)

    def _fail_self(self, problem: str, fix: str) -> NoReturn:
        raise ConfigError(f"{self.path.rstrip(':')}: {problem}", fix)

    def allow(self, *keys: str) -> None:
        """Refuse unknown keys: a typo must not silently fall back to a default."""
        for key in self.raw:
            if key not in keys:
                self.fail(key, "is not a known setting", f"use one of: {', '.join(keys)}")

    def require(self, key: str) -> None:
        if self.raw.get(key) in (None, ""):
            self.fail(key, "is missing", f"set it in the stack file ({self.key(key)})")

    def _get(self, key: str, default: Any, expected: str, example: str | None) -> Any:
        value = self.raw.get(key)
        if value is None or value == "":
            if default is None:
                hint = f", e.g. {example}" if example else ""
                self.fail(key, "is missing", f"set {expected}{hint}")
            return default
        return value

    def string(
        self,
        key: str,
        default: str | None = None,
        *,
        pattern: str | None = None,
        example: str | None = None,
    ) -> str:
        value = self._get(key, default, "a string", example)
        if not isinstance(value, str):
            self.fail(key, f"{value!r} is {_kind(value)}, not a string", "quote the value")
        if pattern is not None and not re.fullmatch(pattern, value):
            hint = f", e.g. {example!r}" if example else ""
            self.fail(key, f"{value!r} is not valid", f"use a value matching {pattern}{hint}")
        return value

    def opt_string(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None or value == "":
            return None
        return self.string(key)

    def number(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        value = self._get(key, default, "a whole number", None)
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.fail(key, f"{value!r} is {_kind(value)}, not a whole number", "write e.g. 30")
        try:
            number = int(value)
        except ValueError:
            self.fail(key, f"{value!r} is not a whole number", "write e.g. 30")
        if minimum is not None and number < minimum:
            self.fail(key, f"{number} is below the minimum {minimum}", f"use {minimum} or more")
        if maximum is not None and number > maximum:
            self.fail(key, f"{number} is above the maximum {maximum}", f"use {maximum} or less")
        return number

    def opt_number(
        self, key: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        if self.raw.get(key) in (None, ""):
            return None
        return self.number(key, minimum=minimum, maximum=maximum)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.fail(key, f"{value!r} is not true or false", "write true or false")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(key, default, example=choices[0])
        if value not in choices:
            self.fail(
                key,
                f"{value!r} is not one of {', '.join(choices)}",
                f"use one of: {', '.join(choices)}",
            )
        return value

    def obj(self, key: str, default: Mapping[str, Any] | None) -> Reader:
        value = self._get(key, default, "an object", None)
        return Reader(value, self.key(key))

    def items(self, key: str) -> list[Any]:
        value = self.raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"is {_kind(value)}, not a list", "write it as a YAML list")
        return value

    def obj_list(self, key: str) -> list[Reader]:
        return [Reader(item, f"{self.key(key)}[{i}]") for i, item in enumerate(self.items(key))]

    def str_list(self, key: str) -> list[str]:
        items = self.items(key)
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                self.fail(f"{key}[{i}]", f"{item!r} is not a name", "write a non-empty string")
        return items


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", int: "a number"}.get(
        type(value), f"a {type(value).__name__}"
    )


# ---------------------------------------------------------------------------------------------
# Value checks

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {m: i + 1 for i, m in enumerate(_MONTHS)},
    ),
    # Kubernetes' cron parser takes 0-6 only (7 for Sunday is refused by the API server).
    ("day of week", 0, 6, {d: i for i, d in enumerate(_WEEKDAYS)}),
)
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _cron_value(text: str, low: int, high: int, words: dict[str, int]) -> int:
    value = words.get(text.lower()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise ValueError(text)
    return value


def _cron_field(field: str, low: int, high: int, words: dict[str, int]) -> None:
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            raise ValueError(part)
        if base in ("*", "?"):
            continue
        first, _, last = base.partition("-")
        start = _cron_value(first, low, high, words)
        if last and _cron_value(last, low, high, words) < start:
            raise ValueError(part)


def check_cron(r: Reader, key: str, default: str) -> str:
    """The schedule syntax Kubernetes CronJobs accept: five fields or an @macro."""
    value = r.string(key, default)
    fix = 'use five fields "minute hour day-of-month month day-of-week", e.g. "0 2 * * *"'
    if "TZ=" in value:
        r.fail(key, f"{value!r} embeds a time zone", "drop TZ= and set timeZone instead")
    if value.strip().lower() in _CRON_MACROS:
        if value not in _CRON_MACROS:
            r.fail(
                key,
                f"{value!r}: Kubernetes takes macros in lower case only",
                f"write {value.strip().lower()!r}",
            )
        return value
    fields = value.split()
    if len(fields) != 5:
        r.fail(key, f"{value!r} has {len(fields)} fields, not 5", fix)
    for field, (label, low, high, words) in zip(fields, _CRON_FIELDS, strict=True):
        try:
            _cron_field(field, low, high, words)
        except ValueError:
            r.fail(key, f"{value!r}: the {label} field {field!r} is invalid ({low}-{high})", fix)
    return value


def check_time_zone(r: Reader, key: str, default: str) -> str:
    value = r.string(key, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        r.fail(key, f"{value!r} is not an IANA time zone", "use e.g. Etc/UTC or Europe/Berlin")
    return value


_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_UNITS = {
    "m": Decimal("0.001"), "": Decimal(1), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip


def quantity_value(text: str) -> Decimal:
    """A quantity check_quantity accepted, as a number (cores or bytes)."""
    match = _QUANTITY.fullmatch(text)
    assert match is not None, text
    return Decimal(match[1]) * _UNITS[match[3] or ""]


def check_quantity(r: Reader, key: str, default: str, *, of: str = "") -> str:
    """A Kubernetes quantity above zero; `of="memory"` or `"storage"` also refuses millibytes."""
    value = r.raw.get(key, default)
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    example = "250m or 2" if of == "cpu" else "30Gi or 512Mi"
    if not isinstance(text, str) or not _QUANTITY.fullmatch(text):
        r.fail(key, f"{value!r} is not a Kubernetes quantity", f"write e.g. {example}")
    if of in ("memory", "storage") and text.endswith("m"):
        r.fail(key, f"{text!r} is in thousandths of a byte", f"write e.g. {example} (Mi, not m)")
    if quantity_value(text) <= 0:
        r.fail(key, f"{text!r} is not above zero", f"write e.g. {example}")
    return text


_COMPRESSION_LEVELS = {"zstd": (1, 22), "lz4": (1, 12), "gzip": (0, 9)}


def check_compression(r: Reader, key: str, default: str) -> str:
    value = r.string(key, default)
    method, _, level = value.partition(":")
    fix = "use auto, zstd, lz4, gzip or none, optionally with :level (e.g. zstd:3)"
    if method not in ("auto", "none", *_COMPRESSION_LEVELS):
        r.fail(key, f"{value!r} is not a known compression", fix)
    if level:
        low, high = _COMPRESSION_LEVELS.get(method, (0, -1))
        if not level.isdigit() or not low <= int(level) <= high:
            r.fail(key, f"{value!r}: level {level!r} does not fit {method}", fix)
    return value


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_bucket_name(r: Reader, key: str) -> str:
    value = r.string(key, example="vocab-app-staging-postgres-backups")
    fix = (
        "use 3-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
    )
    if (
        not _BUCKET.fullmatch(value)
        or ".." in value
        or ".-" in value
        or "-." in value
        or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value)
        or value.startswith(("xn--", "sthree-"))
        or value.endswith(("-s3alias", "--ol-s3"))
    ):
        r.fail(key, f"{value!r} is not a valid S3 bucket name", fix)
    return value


_IMAGE = re.compile(r"^(?P<repo>[a-z0-9./_-]+):(?P<tag>[\w][\w.-]{0,127})@sha256:[0-9a-f]{64}$")


def check_image(r: Reader, key: str, repository: str) -> str:
    """Official images only, pinned by tag and digest (the digest is what runs; the tag says which
    version it is to a human and to the policy pack)."""
    value = r.string(key, example=f"{repository}:TAG@sha256:DIGEST")
    match = _IMAGE.fullmatch(value)
    if match is None or match["tag"] == "latest":
        r.fail(key, f"{value!r} is not pinned", f"write {repository}:<version>@sha256:<digest>")
    repo = match["repo"].removeprefix("docker.io/").removeprefix("library/")
    if repo != repository:
        r.fail(key, f"{value!r} is not the official {repository} image", f"use {repository}")
    return value


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = rf"([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{LABEL_NAME}"


def check_labels(r: Reader, key: str) -> tuple[tuple[str, str], ...]:
    """A mapping of Kubernetes labels (key: value), as the API server would accept them."""
    labels = r.raw.get(key) or {}
    if not isinstance(labels, Mapping):
        r.fail(
            key, f"is {_kind(labels)}, not a mapping", "write e.g. {release: kube-prometheus-stack}"
        )
    for name, value in labels.items():
        if not isinstance(name, str) or not re.fullmatch(LABEL_KEY, name):
            r.fail(key, f"{name!r} is not a label key", "use e.g. release or example.com/team")
        if not isinstance(value, str) or not re.fullmatch(f"({LABEL_NAME})?", value):
            r.fail(
                f"{key}.{name}",
                f"{value!r} is not a label value",
                "quote a string of up to 63 letters, digits, '-', '_' or '.'",
            )
    return tuple(sorted(labels.items()))


def check_endpoint_url(r: Reader, key: str) -> str:
    """An S3 endpoint: https; plain http only to a store that traffic never leaves the cluster
    (or the machine) to reach: a Service name (`*.svc`, `*.svc.cluster.local`) or loopback.
    Anywhere else the credentials and every dump would cross the network in clear text."""
    value = r.string(key, default="")
    if not value:
        return value
    parsed = urlsplit(value)
    host = parsed.hostname or ""
    internal = host in ("127.0.0.1", "localhost", "::1") or host.endswith(
        (".svc", ".svc.cluster.local")
    )
    if parsed.scheme != "https" and not (parsed.scheme == "http" and internal):
        r.fail(
            key,
            f"{value!r} is not an https URL",
            "use https://...; plain http only to an in-cluster Service "
            "(http://minio.storage.svc:9000) or loopback; empty for AWS",
        )
    if not parsed.hostname:
        r.fail(key, f"{value!r} names no host", "write e.g. https://s3.eu-west-1.amazonaws.com")
    return value


def check_dns_label(r: Reader, key: str, value: str, max_len: int) -> str:
    pattern = _DNS_SUBDOMAIN if max_len > 63 else _DNS_LABEL
    if len(value) > max_len or not pattern.fullmatch(value):
        r.fail(
            key,
            f"{value!r} is not a valid Kubernetes name",
            f"use at most {max_len} lowercase letters, digits and '-'",
        )
    return value
