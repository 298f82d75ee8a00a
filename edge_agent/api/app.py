"""The FastAPI application: routes, the API key, and the settings they share."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge_agent import __version__
from edge_agent.api import errors, names
from edge_agent.api.backend import MeshBackend
from edge_agent.api.chat import ChatHandler
from edge_agent.api.metrics import ApiMetrics


@dataclass(frozen=True)
class ApiSettings:
    key: str
    final_max_tokens: int = 512
    max_body_bytes: int = 256 * 1024
    max_concurrent: int = 32


def create_app(backend: MeshBackend, settings: ApiSettings) -> FastAPI:
    app = FastAPI(title="dmoa-edge", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    errors.install(app)
    metrics = ApiMetrics(backend)
    chat = ChatHandler(backend, metrics, settings.final_max_tokens, settings.max_body_bytes,
                       settings.max_concurrent)
    expected = settings.key.encode()

    def authorised(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise errors.ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                  code="invalid_api_key")

    @app.post("/v1/chat/completions", dependencies=[Depends(authorised)])
    async def chat_completions(request: Request) -> Response:
        return await chat.handle(request)

    @app.get("/v1/models", dependencies=[Depends(authorised)])
    def list_models() -> dict[str, object]:
        return {"object": "list", "data": names.listing(backend.local, backend.statuses())}

    @app.get("/v1/models/{model_id}", dependencies=[Depends(authorised)])
    def get_model(model_id: str) -> dict[str, object]:
        for entry in names.listing(backend.local, backend.statuses()):
            if entry["id"] == model_id:
                return entry
        raise errors.ApiError(404, f"model {model_id!r} does not exist here", code="model_not_found")

    @app.get("/health")
    def health() -> JSONResponse:
        """Open to all (no key): load balancers and the deploy's health check probe it."""
        statuses = backend.statuses()
        own = statuses.get(backend.local)
        ok = backend.connected() and own is not None and own.online
        body = {"status": "ok" if ok else "unavailable", "device": backend.local,
                "broker_connected": backend.connected(), "agent_online": bool(own and own.online),
                "live_devices": sorted(d for d, s in statuses.items() if s.online), "version": __version__}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
