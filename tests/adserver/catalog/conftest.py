"""Fixtures of the catalog tests: a real HTTP server on loopback standing for a store's server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adserver.catalog.localserver import LocalServer


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.close()
