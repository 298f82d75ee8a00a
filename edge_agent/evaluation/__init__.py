"""The paper's experiment on a running mesh: AlpacaEval prompts arriving as a
Poisson process at uniformly drawn devices, one configuration (M, k) after
another, every inference recorded; then AlpacaEval-format outputs, an optional
pairwise judge, and a report shaped like the paper's Tables I and II.
"""
