"""The queueing model of the paper: the stability bound, peer-choice policies and the simulator.
Pure: imports nothing of the node, the wire or the edges."""
