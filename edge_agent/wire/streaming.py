"""Publishing the final answer's pieces while the origin generates them.

Chunks go at QoS 0 straight to the client's board (topics.stream): losing
one costs a client only the live view, because the answer itself follows at
QoS 1 through the outbox. Each chunk carries the submit's secret, so a client
can tell them from chunks forged by another board, and its character offset,
so a receiver appends each piece once and in order.
"""

from __future__ import annotations

from typing import Protocol

from edge_agent.wire import topics
from edge_agent.wire.messages import Chunk


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> object: ...


class ChunkPublisher:
    """A token hook: each piece becomes one chunk on the job's stream topic."""

    def __init__(self, client: Publisher, origin: str, to: str, job_id: str, secret: str) -> None:
        self._client = client
        self._origin = origin
        self._topic = topics.stream(to, job_id)
        self._job_id = job_id
        self._secret = secret
        self.offset = 0

    def __call__(self, piece: str) -> None:
        chunk = Chunk(job_id=self._job_id, origin=self._origin, offset=self.offset, text=piece,
                      secret=self._secret)
        self._client.publish(self._topic, chunk.encode(), qos=0)
        self.offset += len(piece)


class Assembler:
    """The receiving side: the text of one job's stream, from chunks in any order, each once."""

    def __init__(self) -> None:
        self.text = ""
        self._early: dict[int, str] = {}

    def add(self, offset: int, piece: str) -> str:
        """Take a chunk; return what it adds to the text (possibly nothing, possibly more)."""
        if offset > len(self.text):
            self._early[offset] = piece  # QoS 0 keeps no order promise across reconnects
            return ""
        if offset < len(self.text):
            return ""  # a duplicate, or a restarted inference repeating itself
        added = piece
        self.text += piece
        while len(self.text) in self._early:
            more = self._early.pop(len(self.text))
            self.text += more
            added += more
        return added

    def rest(self, answer: str) -> str:
        """What the complete answer adds to what was streamed ('' if the stream went its own way)."""
        return answer[len(self.text):] if answer.startswith(self.text) else ""
