"""The admin API's routes (FastAPI): probes, metrics, status, backends at run time,
config, reload, the OpenAPI document and the dashboard page.

Handlers are thin: they find the pool or backend, call the runtime (``Pool``'s
membership methods, ``status``), and translate its errors to HTTP statuses at
this one boundary. The pools are always read through the ProxyServer, whose
runtime a reload swaps.

Every handler and dependency is ``async def``: FastAPI runs plain ``def`` ones on
a thread pool, and these read and change pools that only the loop may touch.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from importlib import resources
from typing import Awaitable, Callable, Iterator

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fulcrum import __version__
from fulcrum.admin import schemas
from fulcrum.admin.auth import Auth, require_token
from fulcrum.admin.config_view import effective_config
from fulcrum.admin.status import backend_state, pool_status, readiness, status
from fulcrum.config.errors import ConfigError
from fulcrum.observability.metrics import Metrics
from fulcrum.proxy.server import ProxyServer
from fulcrum.runtime.membership import MembershipError, UnknownBackend
from fulcrum.runtime.pool import Pool

log = logging.getLogger("fulcrum.admin")

Reload = Callable[[], Awaitable[str]]
API = "/api/v1"


class AdminContext:
    """What the admin API reads and acts on, shared by every handler.

    Views of traffic (status, backend rows, metrics) and the effects of a change go
    through its methods: here they read this process's live state; the supervisor's
    subclass (cluster/admin.py) adds its workers up and pushes changes to them."""

    def __init__(self, proxy: ProxyServer, metrics: Metrics, *,
                 stopping: Callable[[], bool] = lambda: False, reload: Reload | None = None) -> None:
        self.proxy = proxy
        self.metrics = metrics
        self.stopping = stopping
        self.reload = reload  # None until hot reload exists: POST /reload answers 501
        self.started_at = time.time()

    async def status(self) -> dict:
        return status(self.proxy.runtime, self.metrics.requests, len(self.proxy.connections), self.started_at)

    async def pool_view(self, pool: Pool) -> dict:
        return pool_status(pool, self.metrics.requests)

    def readiness(self) -> dict:
        return readiness(self.proxy.runtime, self.stopping())

    async def metrics_text(self) -> bytes:
        return generate_latest(self.metrics.registry)

    async def changed(self, pool: Pool) -> None:
        """A backend of ``pool`` was added or changed (the change is in effect here already)."""

    async def remove_backend(self, pool: Pool, backend_id: str, timeout: float) -> None:
        await pool.remove_backend(backend_id, timeout)


async def _ctx(request: Request) -> AdminContext:
    return request.app.state.ctx


def _pool(ctx: AdminContext, name: str) -> Pool:
    pools = ctx.proxy.runtime.pools
    pool = pools.get(name)
    if pool is None:
        raise HTTPException(404, f"no pool named {name!r} (pools: {', '.join(pools) or 'none'})")
    return pool


async def _row(ctx: AdminContext, pool: Pool, backend_id: str) -> dict:
    for row in (await ctx.pool_view(pool))["backends"]:
        if row["id"] == backend_id:
            return row
    raise HTTPException(404, f"pool {pool.name!r} has no backend {backend_id!r}")


def _errors(*codes: int) -> dict:
    return {code: {"model": schemas.Problem} for code in codes}


PoolName = Path(description="pool name, as in the config")
BackendId = Path(description="backend id (default host:port)")

public = APIRouter()
reads = APIRouter()
writes = APIRouter(dependencies=[Depends(require_token)], responses=_errors(401, 403, 429))


# -- public: a static page with no data; its data requests are authorised like any other
@public.get("/", response_class=HTMLResponse, summary="Dashboard (HTML page)")
async def dashboard(request: Request) -> HTMLResponse:
    return HTMLResponse(request.app.state.dashboard)


# -- reads ---------------------------------------------------------------------------------
@reads.get("/health", response_model=schemas.Liveness, summary="Liveness: the process answers")
async def health() -> dict:
    return {"status": "ok"}


@reads.get("/ready", response_model=schemas.Readiness, summary="Readiness: every pool has a usable backend",
           responses={503: {"model": schemas.Readiness, "description": "not ready"}})
async def ready(ctx: AdminContext = Depends(_ctx)) -> JSONResponse:
    body = ctx.readiness()
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@reads.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format)")
async def metrics(ctx: AdminContext = Depends(_ctx)) -> Response:
    return Response(await ctx.metrics_text(), media_type=CONTENT_TYPE_LATEST)


@reads.get(f"{API}/status", response_model=schemas.Status, summary="Pools, backends and routes now")
async def get_status(ctx: AdminContext = Depends(_ctx)) -> dict:
    return await ctx.status()


@reads.get(f"{API}/pools/{{pool}}/backends", response_model=list[schemas.BackendStatus],
           summary="A pool's backends", responses=_errors(404))
async def list_backends(pool: str = PoolName, ctx: AdminContext = Depends(_ctx)) -> list[dict]:
    return (await ctx.pool_view(_pool(ctx, pool)))["backends"]


@reads.get(f"{API}/pools/{{pool}}/backends/{{backend_id}}", response_model=schemas.BackendStatus,
           summary="One backend", responses=_errors(404))
async def get_backend(pool: str = PoolName, backend_id: str = BackendId, ctx: AdminContext = Depends(_ctx)) -> dict:
    return await _row(ctx, _pool(ctx, pool), backend_id)


@reads.get(f"{API}/config", summary="The effective configuration, secrets redacted",
           response_model=dict[str, object])
async def get_config(ctx: AdminContext = Depends(_ctx)) -> dict:
    return effective_config(ctx.proxy.runtime)


# -- changes -------------------------------------------------------------------------------
@writes.post(f"{API}/pools/{{pool}}/backends", response_model=schemas.BackendStatus, status_code=201,
             summary="Add a backend (takes traffic at once unless enabled is false)",
             responses=_errors(404, 409))
async def add_backend(body: schemas.NewBackend, pool: str = PoolName, ctx: AdminContext = Depends(_ctx)) -> dict:
    target = _pool(ctx, pool)
    with _translated():
        backend = target.add_backend(body.url, weight=body.weight, id=body.id, enabled=body.enabled)
    await ctx.changed(target)
    _audit("backend added", target, backend.id, url=backend.url, weight=backend.weight, enabled=backend.enabled)
    return await _row(ctx, target, backend.id)


@writes.patch(f"{API}/pools/{{pool}}/backends/{{backend_id}}", response_model=schemas.BackendStatus,
              summary="Change a backend's weight or enabled flag", responses=_errors(404))
async def patch_backend(body: schemas.BackendPatch, pool: str = PoolName, backend_id: str = BackendId,
                  ctx: AdminContext = Depends(_ctx)) -> dict:
    target = _pool(ctx, pool)
    with _translated():
        target.backend(backend_id)  # 404 before any change
        if body.weight is not None:
            target.set_weight(backend_id, body.weight)
        if body.enabled is not None:
            target.set_enabled(backend_id, body.enabled)
    await ctx.changed(target)
    _audit("backend changed", target, backend_id, **body.model_dump(exclude_none=True))
    return await _row(ctx, target, backend_id)


@writes.post(f"{API}/pools/{{pool}}/backends/{{backend_id}}/drain", response_model=schemas.BackendStatus,
             summary="Drain: no new requests; those in flight finish", responses=_errors(404))
async def drain_backend(pool: str = PoolName, backend_id: str = BackendId, ctx: AdminContext = Depends(_ctx)) -> dict:
    target = _pool(ctx, pool)
    with _translated():
        target.drain(backend_id)
    await ctx.changed(target)
    _audit("backend drained", target, backend_id)
    return await _row(ctx, target, backend_id)


@writes.delete(f"{API}/pools/{{pool}}/backends/{{backend_id}}", response_model=schemas.BackendStatus,
               summary="Drain, wait for requests in flight, then remove", responses=_errors(404, 409))
async def delete_backend(pool: str = PoolName, backend_id: str = BackendId,
                         timeout: float = Query(30.0, ge=0, le=300, description="seconds to wait for the drain"),
                         ctx: AdminContext = Depends(_ctx)) -> dict:
    target = _pool(ctx, pool)
    row = await _row(ctx, target, backend_id)
    with _translated():
        backend = target.backend(backend_id)
        await ctx.remove_backend(target, backend_id, timeout)
    _audit("backend removed", target, backend_id)
    # What it looked like as it left: drained, idle, and with no pool totals any more.
    return {**row, "state": backend_state(backend), "enabled": backend.enabled, "available": False,
            "in_flight": 0, "effective_weight": 0.0, "share_of_traffic": 0.0, "share_of_weight": 0.0}


@writes.post(f"{API}/reload", response_model=schemas.ReloadResult, summary="Reload the configuration file",
             responses=_errors(422, 501))
async def reload(ctx: AdminContext = Depends(_ctx)) -> dict:
    if ctx.reload is None:
        raise HTTPException(501, "hot reload is not available in this version; restart Fulcrum to apply "
                                 "a new configuration (backends can be changed at run time through this API)")
    try:
        detail = await ctx.reload()
    except ConfigError as exc:
        ctx.metrics.record_reload(False)
        raise HTTPException(422, "; ".join(exc.problems)) from None
    ctx.metrics.record_reload(True)
    return {"reloaded": True, "detail": detail}


@contextmanager
def _translated() -> Iterator[None]:
    """Map the runtime's membership errors to HTTP statuses (the one place that does)."""
    try:
        yield
    except UnknownBackend as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:  # a bad url or weight
        raise HTTPException(422, str(exc)) from None
    except MembershipError as exc:  # BackendConflict and the like
        raise HTTPException(409, str(exc)) from None


def _audit(event: str, pool: Pool, backend_id: str, **fields) -> None:
    log.info(event, extra={"fields": {"pool": pool.name, "backend": backend_id, **fields}})


def build_app(ctx: AdminContext, auth: Auth) -> FastAPI:
    """The admin application; reads need the token only off loopback."""
    app = FastAPI(title="Fulcrum admin API", version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None, description="Status, metrics and backend changes at run time. "
                  "Every change needs the admin token; reads need it too off loopback.")
    app.state.ctx = ctx
    app.state.auth = auth
    app.state.dashboard = resources.files("fulcrum.admin").joinpath("dashboard.html").read_text("utf-8")
    read_deps = [Depends(require_token)] if auth.reads_need_token else []
    read_errors = _errors(401, 403, 429) if auth.reads_need_token else None
    @app.middleware("http")
    async def loopback_host_only(request: Request, call_next):
        refused = auth.foreign_host(request.headers.get("host", "").encode("latin-1") or None)
        if refused is not None:
            return JSONResponse({"detail": refused}, status_code=403)
        return await call_next(request)

    app.include_router(public)
    app.include_router(reads, dependencies=read_deps, responses=read_errors)
    app.include_router(writes)

    @app.get(f"{API}/openapi.json", include_in_schema=False, dependencies=read_deps)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app
