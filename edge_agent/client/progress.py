"""Progress events as one human line each, for the terminal and the API's stream."""

from __future__ import annotations

from edge_agent.wire.messages import Progress


def describe(p: Progress) -> str:
    """One human line per progress event."""
    total = p.layers + 1
    where = f"layer {p.layer}/{total}" if p.layer else ""
    text = {
        "accepted": f"job {p.job_id} accepted by {p.origin} (M={p.layers}, k={p.proposers})",
        "dispatched": f"{where}: sent to {p.detail}",
        "answer": f"{where}: answer {p.answers_in}/{p.expected} from {p.device} ({p.seconds:.1f} s)"
                  + (f" FAILED: {p.detail}" if p.detail else ""),
        "redispatched": f"{where}: {p.detail}; re-sent to {p.device}",
        "skipped": f"{where}: {p.detail}; going on without it",
        "layer-done": f"{where}: done with {p.answers_in} answer(s)",
        "done": f"done in {p.seconds:.1f} s" + (" (degraded)" if p.degraded else ""),
        "failed": f"failed: {p.detail}",
    }
    return text.get(p.event, p.event)
