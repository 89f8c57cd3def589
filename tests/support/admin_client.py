"""A client for a running Fulcrum's admin listener, for integration tests: the REST calls
by name, and /metrics parsed with prometheus_client's own parser."""
from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import Fulcrum, admin_url

TOKEN = "s3cret-admin-token"


class Samples(dict):
    """``{(sample name, frozenset of label pairs): value}`` from one scrape."""

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; 0.0 when absent (a counter not yet created)."""
        return self.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over samples of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.items() if n == name and wanted <= ls)

    def names(self) -> set[str]:
        return {n for n, _ in self}


class AdminClient:
    """The admin API of ``proc``; sends ``token`` as a bearer token when given."""

    def __init__(self, proc: Fulcrum, token: str | None = TOKEN) -> None:
        self.url = admin_url(proc)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, trust_env=False, timeout=30)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def status(self) -> dict:
        response = self.http.get("/api/v1/status")
        response.raise_for_status()
        return response.json()

    def backend(self, pool: str, backend_id: str) -> dict:
        return next(b for b in self.backends(pool) if b["id"] == backend_id)

    def backends(self, pool: str) -> list[dict]:
        response = self.http.get(f"/api/v1/pools/{pool}/backends")
        response.raise_for_status()
        return response.json()

    def add(self, pool: str, url: str, **fields) -> httpx.Response:
        return self.http.post(f"/api/v1/pools/{pool}/backends", json={"url": url, **fields})

    def patch(self, pool: str, backend_id: str, **fields) -> httpx.Response:
        return self.http.patch(f"/api/v1/pools/{pool}/backends/{backend_id}", json=fields)

    def drain(self, pool: str, backend_id: str) -> httpx.Response:
        return self.http.post(f"/api/v1/pools/{pool}/backends/{backend_id}/drain")

    def delete(self, pool: str, backend_id: str, timeout: float | None = None) -> httpx.Response:
        params = {"timeout": timeout} if timeout is not None else {}
        return self.http.delete(f"/api/v1/pools/{pool}/backends/{backend_id}", params=params)

    def metrics(self) -> Samples:
        response = self.http.get("/metrics")
        response.raise_for_status()
        samples = Samples()
        for family in text_string_to_metric_families(response.text):
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return samples
