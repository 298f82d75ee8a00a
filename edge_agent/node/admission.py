"""Admission control, as pure functions: whether a prompt can run as asked, and whether its
(M, k) fits the stability bound.

Before a job starts, the mesh-wide ρ = ((k+1)M+1)·λ̄·α_max it would mean is computed from the
statuses of the live devices (this one included). Over the threshold the job is degraded to the
richest (M, k) that fits, refused with an error naming one that fits, or run anyway, as the mode
says; the decision is one "admission: ..." note. With no α measured yet, every job is admitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.config import AdmissionMode, AgentConfig
from edge_agent.engine.prompts import TokenCounter, check_fits
from edge_agent.errors import ModelError
from edge_agent.theory.stability import inferences_per_prompt, mesh_load, richest_fit
from edge_agent.wire.messages import Status, Submit

QUEUE_FULL = "queue full"


@dataclass(frozen=True)
class Decision:
    layers: int
    proposers: int
    error: str = ""
    """Non-empty when the job is refused."""
    note: str = ""
    """Non-empty when admission control acted (or would have, in mode accept)."""


def decide(layers: int, proposers: int, statuses: list[Status], mode: AdmissionMode,
           threshold: float) -> Decision:
    """The (M, k) to run for a job that asks for (layers, proposers), given the live statuses;
    mode comes from the agent's validated configuration."""
    load = mesh_load(statuses)
    rho = load.rho(layers, proposers) if load is not None else 0.0
    if load is None or rho <= threshold:
        return Decision(layers, proposers)  # within the bound, or nothing measured yet
    asked = f"M={layers},k={proposers}"
    over = f"ρ={rho:.2f} > {threshold:g}; λ̄={load.lam:.3g}/s, α_max={load.alpha_max:.3g} s on {load.slowest}"
    fit = richest_fit(layers, proposers, load.lam, load.alpha_max, threshold)
    if mode == "accept":
        return Decision(layers, proposers, note=f"admission: accepted {asked} anyway ({over})")
    if mode == "reject":
        hint = f"try M={fit[0]}, k={fit[1]}" if fit else "even M=0 does not fit; try again later"
        error = f"mesh utilisation ρ={rho:.2f} for M={layers}, k={proposers} exceeds {threshold:g}; {hint}"
        return Decision(layers, proposers, error=error, note=f"admission: rejected {asked} ({over})")
    target = fit or (0, 0)
    if inferences_per_prompt(*target) >= inferences_per_prompt(layers, proposers):
        return Decision(layers, proposers, note=f"admission: nothing lighter than {asked} to degrade to; ran it "
                                                f"({over})")
    fits = "" if fit else "; still over, the mesh is overloaded"
    return Decision(target[0], target[1], note=f"admission: degraded from {asked} to M={target[0]},k={target[1]} "
                                               f"({over}; ρ={load.rho(*target):.2f} after{fits})")


def final_budget(submit: Submit | None, cfg: AgentConfig) -> int:
    """The final answer's max_tokens: the client's, or this device's final_max_tokens."""
    return (submit.max_tokens if submit and submit.max_tokens else 0) or cfg.final_max_tokens


def refusal(submit: Submit, cfg: AgentConfig, counter: TokenCounter, queued: int) -> str:
    """Why a prompt cannot run as asked, before any inference ("" when it can): this device's
    queue holds max_queue tasks already, the prompt is over the documented max_prompt_chars or
    empty, a conversation does not end with the user, or its layers cannot fit the model's
    context (counted with the model's own tokenizer). An accepted job's later layers are never
    refused a place in the queue: that would throw away the work of its first."""
    if queued >= cfg.max_queue:
        return f"{QUEUE_FULL} ({cfg.max_queue} tasks); try again later"
    if len(submit.prompt) > cfg.max_prompt_chars:
        return (f"prompt of {len(submit.prompt)} characters exceeds this device's limit of "
                f"{cfg.max_prompt_chars} (max_prompt_chars)")
    if not submit.prompt.strip():
        return "prompt is empty"
    if submit.messages and submit.messages[-1].role != "user":
        return "the conversation must end with a user message"
    turns: list[tuple[str, str]] = [(t.role, t.content) for t in submit.messages] or [("user", submit.prompt)]
    try:
        if submit.layers:
            check_fits(turns, 0, "", cfg.n_ctx, cfg.max_tokens, counter)
        check_fits(turns, (submit.proposers + 1) if submit.layers else 0, cfg.aggregation_instruction,
                   cfg.n_ctx, final_budget(submit, cfg), counter)
    except ModelError as err:
        return str(err)
    return ""
