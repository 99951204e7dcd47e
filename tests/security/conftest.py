"""Fixtures of the security tests."""

from datetime import UTC, datetime

import pytest
import time_machine

# 12:00:05 UTC: five seconds into a 30-second TOTP step (whole minutes divide by 30).
START = datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC)


@pytest.fixture
def clock():
    """Frozen time; `clock.shift(seconds)` moves it."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller
