"""Values in the form pulumi-docker's Read writes them back.

The program declares durations and CPU counts in these forms, so that the state a Create reads back
equals the program's inputs and the next `up` shows no diff (a 90 s interval is "1m30s", 1 CPU is
"1.0").
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction


class NotAGoDuration(ValueError):
    pass


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s", "500ms", "0s")."""
    if text in ("0", ""):
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise NotAGoDuration(f"{text!r} is not a Go duration")
    return int(sum(Decimal(n) * _GO_UNITS[u] for n, u in parts))


def go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String(): what Read writes back for a duration (90s -> "1m30s")."""
    if nanoseconds == 0:
        return "0s"
    if nanoseconds < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if nanoseconds >= size:
                return f"{_trim(Fraction(nanoseconds, size))}{unit}"
    hours, rest = divmod(nanoseconds, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_trim(Fraction(rest, 10**9))}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def seconds(value: float) -> str:
    """A duration in seconds, written in the form the provider reads back."""
    return go_duration(int(Decimal(str(value)) * 10**9))


def short_seconds(value: float) -> str:
    """A Service's durations as its Read writes them back (shortDur: "1m0s" -> "1m", "1h0m0s" -> "1h")."""
    return short_duration(int(Decimal(str(value)) * 10**9))


def short_duration(nanoseconds: int) -> str:
    """resource_docker_service_structures.go shortDur: Go's Duration.String() less a trailing "0s"
    after minutes and "0m" after hours."""
    text = go_duration(nanoseconds)
    if text.endswith("m0s"):
        text = text[:-2]
    if text.endswith("h0m"):
        text = text[:-2]
    return text


def _trim(value: Fraction) -> str:
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def cpus(value: float | str) -> str:
    """helpers.go nanoInt64ToDecimalString: how Read writes `cpus` back (1 -> "1.0", 10 -> "10.")."""
    nanos = int(Decimal(str(value)) * 10**9)
    if nanos == 0:
        return "0"
    rational = Fraction(nanos, 10**9)
    text = _float_string(rational, 9)
    if text.count("0") == 9:
        return _float_string(rational, 1)
    return text.rstrip("0")


def _float_string(value: Fraction, places: int) -> str:
    """Go's big.Rat.FloatString: rounded half away from zero to `places` decimals."""
    scaled = value * 10**places
    whole = int(scaled)
    if (scaled - whole) * 2 >= 1:
        whole += 1
    digits = str(whole).rjust(places + 1, "0")
    return f"{digits[:-places]}.{digits[-places:]}" if places else digits
