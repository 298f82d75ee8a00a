"""A finished job's answer message, and the reason a failed one gives a program."""

from __future__ import annotations

from edge_agent.node.admission import QUEUE_FULL
from edge_agent.node.jobs import DispatchRow, JobRow
from edge_agent.wire.messages import Answer, AnswerReason, Inference

# Error answers a program must tell apart (Answer.reason): the request's own fault,
# or admission control's refusal; anything else is the mesh failing to answer.
INVALID_PREFIXES = ("prompt ", "the conversation ")
OVERLOADED_PREFIXES = ("mesh utilisation", QUEUE_FULL)


def failure_reason(error: str) -> AnswerReason:
    if error.startswith(OVERLOADED_PREFIXES):
        return "overloaded"
    return "invalid" if error.startswith(INVALID_PREFIXES) else "failed"


def answer_message(job: JobRow, origin: str, dispatches: list[DispatchRow], ok: bool, answer: str, error: str,
                   finished_at: float) -> Answer:
    """The answer of job, with one record per inference that answered."""
    inferences = [
        Inference(layer=d.layer, role=d.role, device=d.device, seconds=d.seconds, prompt_tokens=d.prompt_tokens,
                  completion_tokens=d.completion_tokens, queue_wait_s=d.queue_wait_s, truncated=d.truncated)
        for d in dispatches if d.state == "done"
    ]
    return Answer(job_id=job.job_id, origin=origin, ok=ok, answer=answer, error=error, layers=job.layers,
                  proposers=job.proposers, degraded=job.degraded, notes=job.notes,
                  latency_s=round(finished_at - job.created_at, 3), inferences=inferences, secret=job.secret,
                  reason="" if ok else failure_reason(error))
