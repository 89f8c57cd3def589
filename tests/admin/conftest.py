"""Fixtures for the admin listener's tests: Fulcrum with an admin token, and its client."""
from __future__ import annotations

import pytest

from tests.support.admin_client import TOKEN, AdminClient
from tests.support.processes import Backend, Fulcrum, pool_config


@pytest.fixture
def admin_for():
    """``admin_for(proc, token=TOKEN)``: an AdminClient on a running Fulcrum, closed at teardown."""
    clients: list[AdminClient] = []

    def connect(proc, token: str | None = TOKEN) -> AdminClient:
        client = AdminClient(proc, token)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One example backend behind one Fulcrum (admin token set) for a whole module of tests
    that change nothing: ``(fulcrum, backend)``."""
    backend = Backend("b1")
    proc = Fulcrum({"admin": {"token": TOKEN}, "pools": {"web": pool_config(backend)}},
                   tmp_path_factory.mktemp("shared"))
    yield proc, backend
    code = proc.stop()
    backend.stop()
    assert code == 0, f"fulcrum exited with {code}:\n{proc.output}"
