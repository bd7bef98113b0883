"""Values the program writes in the form the docker provider reads them back in (infra/canonical.py),
so a later `up` sees no difference; the integration tests' second `up` proves it on the provider."""

from __future__ import annotations

import pytest

from infra import canonical


@pytest.mark.parametrize(
    ("value", "read_back"),
    [(1, "1.0"), (2, "2.0"), (0.5, "0.5"), (1.5, "1.5"), (10, "10."), (0.05, "0.1"), (0.25, "0.25")],
)
def test_cpus_read_back_as_the_provider_formats_them(value: float, read_back: str) -> None:
    assert canonical.cpus(value) == read_back


@pytest.mark.parametrize(
    ("written", "read_back"), [("3s", "3s"), ("1m", "1m0s"), ("90s", "1m30s"), ("500ms", "500ms"), ("1h", "1h0m0s")]
)
def test_durations_read_back_in_go_form(written: str, read_back: str) -> None:
    assert canonical.go_duration(canonical.parse_go_duration(written)) == read_back
