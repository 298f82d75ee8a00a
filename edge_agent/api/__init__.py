"""The board's OpenAI-compatible HTTP API (`edge-agent api`), at the edge of the core.

It is a client of the local agent like `edge-agent submit`: every request
becomes a submit on the board's broker, and the answer (streamed or whole)
comes back over MQTT. Only this package imports the web stack.
"""
