"""Theorem 1 of arXiv 2412.21200 in its smallest form, for the agent's own status."""


def inferences_per_prompt(layers: int, proposers: int) -> int:
    """(k+1)·M + 1: k+1 answers in each of M layers, then the origin's final aggregation."""
    return (proposers + 1) * layers + 1


def utilisation(layers: int, proposers: int, lam: float, alpha_max: float) -> float:
    """rho = ((k+1)M+1)·lambda·alpha_max; the queues are stable when rho < 1."""
    return inferences_per_prompt(layers, proposers) * lam * alpha_max
