"""The documents tests' scene: `book` (see tests.helpers.Book)."""

import pytest

from tests.helpers import Book


@pytest.fixture
def book(world):
    return Book(world)
