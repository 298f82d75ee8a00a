"""dmoa-edge: Distributed Mixture-of-Agents over an MQTT broker mesh.

The package root stays import-light: the TUI (textual) and the model runtime
(llama_cpp) are only imported by the modules that need them.
"""

__version__ = "0.1.0"
