"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["dev", "test", "prod"])
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)
