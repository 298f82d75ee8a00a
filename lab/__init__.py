"""A lab of board-like machines on this host for the deployment playbook.

Each board is a Debian userland booted with systemd as PID 1 by systemd-nspawn, in a network
namespace of its own, on a bridge that lives in one more namespace; the control node reaches the
boards over SSH through that namespace. See docs/lab.md. Not part of the edge_agent package: it
runs on a Linux control node as root, never on a board.
"""
