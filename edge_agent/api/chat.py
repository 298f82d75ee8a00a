"""POST /v1/chat/completions: one request, one MoA job, answered whole or streamed.

A streamed response commits to 200 only once the job runs (its first layer
is dispatched) or has finished: a refusal by admission control or a
conversation that cannot fit still gets its own status. After that, an error
travels in the stream as OpenAI's `{"error": ...}` event. MoA progress before
the first token goes out as SSE comments, which OpenAI clients skip.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from edge_agent.api import names, schemas
from edge_agent.api.backend import Event, Job, JobSpec, MeshBackend
from edge_agent.api.errors import ApiError, describe
from edge_agent.api.metrics import ApiMetrics
from edge_agent.client.progress import describe as describe_progress
from edge_agent.errors import EdgeAgentError, JobError, ProtocolError
from edge_agent.wire.messages import Answer, Progress

RETRY_AFTER_S = 5
STATUS_OF_REASON = {"invalid": 400, "overloaded": 503, "failed": 502}


class ChatHandler:
    def __init__(self, backend: MeshBackend, metrics: ApiMetrics, final_max_tokens: int, max_body_bytes: int,
                 max_concurrent: int) -> None:
        self._backend = backend
        self._metrics = metrics
        self._final_max_tokens = final_max_tokens
        self._max_body = max_body_bytes
        self._max_concurrent = max_concurrent
        self._in_flight = 0

    async def handle(self, request: Request) -> Response:
        try:
            response = await self._handle(request)
        except ApiError as err:
            self._metrics.requests.labels(str(err.status)).inc()
            raise
        self._metrics.requests.labels(str(response.status_code)).inc()
        return response

    async def _handle(self, request: Request) -> Response:
        body = await self._read(request)
        try:
            chat = schemas.ChatRequest.model_validate_json(body)
        except ValidationError as err:
            raise ApiError(400, describe(err.errors())) from None
        turns = [m.turn() for m in chat.messages]
        if turns[-1].role != "user":
            raise ApiError(400, "the last message must be the user's", param="messages")
        try:
            target = names.resolve(chat.model, self._backend.local, self._backend.statuses())
        except names.UnknownModel as err:
            raise ApiError(400, str(err), code="model_not_found", param="model") from None
        if self._in_flight >= self._max_concurrent:
            raise ApiError(429, f"{self._in_flight} requests in flight, the most this board takes; retry later",
                           code="rate_limit_exceeded", retry_after_s=1)
        self._in_flight += 1
        self._metrics.in_flight.inc()
        started = time.monotonic()
        spec = JobSpec(target.device, target.layers, target.proposers, turns, chat.budget(),
                       None if chat.temperature is None else float(chat.temperature), chat.stream)
        job = self._backend.start(spec)
        budget = chat.budget() or self._final_max_tokens
        streaming = False
        try:
            if not chat.stream:
                answer = await self._until_answer(job)
                self._metrics.seconds.observe(time.monotonic() - started)
                return JSONResponse(schemas.completion(job.job_id, chat.model, answer, budget))
            first = await self._until_running(job)
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            streaming = True  # from here the stream's generator counts the request done
            return EventSourceResponse(self._stream(job, first, chat.model, budget, include_usage, started),
                                       ping=15)
        finally:
            if not streaming:
                self._done()

    def _done(self) -> None:
        self._in_flight -= 1
        self._metrics.in_flight.dec()

    async def _read(self, request: Request) -> bytes:
        """The body, refused (413) past the limit; the rest is drained so the connection stays sane."""
        declared = request.headers.get("content-length", "")
        too_big = declared.isdigit() and int(declared) > self._max_body
        body = bytearray()
        async for piece in request.stream():
            if not too_big:
                body += piece
                too_big = len(body) > self._max_body
        if too_big:
            raise ApiError(413, f"request body over {self._max_body} bytes", code="request_too_large")
        return bytes(body)

    async def _next(self, job: Job) -> Event:
        # The client itself times out after api_timeout_s; this bound only guards against a lost thread.
        try:
            return await asyncio.wait_for(job.events.get(), self._backend.timeout_s + 30)
        except asyncio.TimeoutError:
            raise ApiError(504, f"no answer from the mesh in {self._backend.timeout_s:.0f} s") from None

    async def _until_answer(self, job: Job) -> Answer:
        while True:
            kind, value = await self._next(job)
            if kind in ("answer", "error"):
                return _checked(kind, value)

    async def _until_running(self, job: Job) -> list[Event]:
        """Events up to the one that shows the job runs (or has ended well): they start the stream."""
        seen: list[Event] = []
        while True:
            kind, value = await self._next(job)
            if kind in ("answer", "error"):
                _checked(kind, value)
            seen.append((kind, value))
            if kind in ("answer", "token") or (isinstance(value, Progress) and value.event == "dispatched"):
                return seen

    async def _stream(self, job: Job, first: list[Event], model: str, budget: int, include_usage: bool,
                      started: float) -> AsyncIterator[ServerSentEvent]:
        try:
            yield _data(schemas.chunk(job.job_id, model, {"role": "assistant", "content": ""}))
            pending, streamed = list(first), False
            while True:
                kind, value = pending.pop(0) if pending else await self._next(job)
                if isinstance(value, Progress):
                    yield ServerSentEvent(comment=describe_progress(value))
                elif kind == "token" and isinstance(value, str):
                    if not streamed:
                        self._metrics.first_token.observe(time.monotonic() - started)
                        streamed = True
                    yield _data(schemas.chunk(job.job_id, model, {"content": value}))
                else:
                    break
            answer = _checked(kind, value)
            if not streamed and answer.answer:  # nothing came live: the answer whole, in one piece
                yield _data(schemas.chunk(job.job_id, model, {"content": answer.answer}))
            last = schemas.chunk(job.job_id, model, {}, schemas.finish_reason(answer, budget))
            last.update(usage=schemas.usage(answer), dmoa=schemas.extension(answer))
            yield _data(last)
            if include_usage:
                yield _data({**schemas.chunk(job.job_id, model, {}), "choices": [], "usage": schemas.usage(answer)})
            self._metrics.seconds.observe(time.monotonic() - started)
            yield ServerSentEvent(data="[DONE]")
        except ApiError as err:
            yield _data(err.body())
            yield ServerSentEvent(data="[DONE]")
        finally:
            self._done()


def _data(body: dict[str, object]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(body, ensure_ascii=False, separators=(",", ":")))


def _checked(kind: str, value: object) -> Answer:
    """The answer of a job that went well; otherwise the ApiError its failure means."""
    if isinstance(value, JobError):
        raise ApiError(504, str(value), code="timeout")
    if isinstance(value, ProtocolError):  # the request does not fit in a message
        raise ApiError(400, str(value), code="request_too_large")
    if isinstance(value, EdgeAgentError):  # the device is unknown or offline
        raise ApiError(503, str(value), code="unavailable", retry_after_s=RETRY_AFTER_S)
    assert isinstance(value, Answer), kind
    if not value.ok:
        status = STATUS_OF_REASON.get(value.reason, 502)
        raise ApiError(status, value.error, code=value.reason or "failed",
                       retry_after_s=RETRY_AFTER_S if status == 503 else None)
    return value
