"""The request body of a chat completion, and the response bodies built from an answer.

Known fields are strictly typed (a string is not a number); fields we do not
use (top_p, n, user, tools...) are ignored, as clients send them routinely.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from edge_agent.wire.messages import MAX_TASK_TOKENS, Answer, Turn


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[TextPart] | None = None

    def turn(self) -> Turn:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return Turn(role="system" if self.role == "developer" else self.role, content=text)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: StrictStr
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_TASK_TOKENS)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_TASK_TOKENS)
    temperature: StrictFloat | StrictInt | None = Field(default=None, ge=0, le=2)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None

    def budget(self) -> int:
        """The final answer's token budget; 0 means the origin's final_max_tokens."""
        return self.max_completion_tokens or self.max_tokens or 0


def usage(answer: Answer) -> dict[str, int]:
    """Tokens of every inference of the job, not only the final one."""
    prompt = sum(i.prompt_tokens for i in answer.inferences)
    completion = sum(i.completion_tokens for i in answer.inferences)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(answer: Answer, budget: int) -> str:
    final = [i for i in answer.inferences if i.layer == answer.layers + 1]
    return "length" if final and final[-1].completion_tokens >= budget else "stop"


def extension(answer: Answer) -> dict[str, object]:
    """The `dmoa` field: what ran, where, and whether it was degraded."""
    return {"job_id": answer.job_id, "origin": answer.origin, "layers": answer.layers,
            "proposers": answer.proposers, "degraded": answer.degraded, "notes": answer.notes,
            "latency_s": answer.latency_s, "inferences": [
                {"layer": i.layer, "role": i.role, "device": i.device, "seconds": i.seconds,
                 "prompt_tokens": i.prompt_tokens, "completion_tokens": i.completion_tokens,
                 "truncated": i.truncated} for i in answer.inferences]}


def completion(job_id: str, model: str, answer: Answer, budget: int) -> dict[str, object]:
    return {"id": f"chatcmpl-{job_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": finish_reason(answer, budget),
                                         "message": {"role": "assistant", "content": answer.answer}}],
            "usage": usage(answer), "dmoa": extension(answer)}


def chunk(job_id: str, model: str, delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
    return {"id": f"chatcmpl-{job_id}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
