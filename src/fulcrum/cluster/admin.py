"""The admin API's context in the supervisor: one view of every worker, changes sent to all.

Reads ask the serving workers for their status and metrics and add them up with the
supervisor's own state (cluster/merge.py); a change is made to the supervisor's pools
first, then pushed, and answered once every worker applied it. A worker that does not
answer within the snapshot timeout is left out of that one answer (its metrics keep
their last known values).
"""
from __future__ import annotations

from fulcrum.admin.api import AdminContext
from fulcrum.admin.status import pool_status
from fulcrum.cluster.merge import merge_pool, merge_status


class ClusterAdminContext(AdminContext):
    """AdminContext over the supervisor's control plane and its workers."""

    def __init__(self, supervisor, metrics, **kwargs) -> None:
        super().__init__(supervisor.control, metrics, **kwargs)
        self.supervisor = supervisor

    async def status(self) -> dict:
        base = await super().status()
        snapshots = await self.supervisor.snapshots()
        merged = merge_status(base, [answer["status"] for _, answer in snapshots])
        counts = {slot.index: answer["status"] for slot, answer in snapshots}
        merged["workers"] = [_worker_row(slot, counts.get(slot.index)) for slot in self.supervisor.slots]
        return merged

    async def pool_view(self, pool) -> dict:
        base = pool_status(pool, self.metrics.requests)
        snapshots = await self.supervisor.snapshots()
        pools = [p for _, answer in snapshots for p in answer["status"]["pools"] if p["name"] == pool.name]
        return merge_pool(base, pools)

    def readiness(self) -> dict:
        body = super().readiness()
        if not any(slot.serving for slot in self.supervisor.slots):
            body["problems"].append("no worker is serving")
            body["ready"] = False
        return body

    async def metrics_text(self) -> bytes:
        await self.supervisor.snapshots(metrics=True, status=False)
        return self.supervisor.aggregate.render((await super().metrics_text()).decode())

    async def changed(self, pool) -> None:
        await self.supervisor.push(pool.name)

    async def remove_backend(self, pool, backend_id: str, timeout: float) -> None:
        pool.drain(backend_id)
        await self.supervisor.push(pool.name)  # no worker picks it from here on

        async def in_flight(backend) -> int:
            return await self.supervisor.in_flight(pool.name, backend.id)

        try:
            await pool.remove_backend(backend_id, timeout, in_flight=in_flight)
        finally:
            await self.supervisor.push(pool.name)


def _worker_row(slot, status: dict | None) -> dict:
    row = slot.row()
    if status is not None:
        row["open_connections"] = status["open_connections"]
        row["requests_total"] = status["requests_total"]
    return row
