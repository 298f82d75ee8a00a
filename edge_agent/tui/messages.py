"""Messages that carry mesh data into the app; posted from background threads."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from edge_agent.wire.messages import Answer, Progress, Status


@dataclass
class StatusReceived(Message):
    """A device's heartbeat (or its last will, online=False)."""

    status: Status
    received_at: float
    """Wall-clock time at which the feed received it."""
    retained: bool = False
    """True for a retained status delivered on subscribe: it may be old."""

    def can_replace(self, message: Message) -> bool:
        # Two queued heartbeats of one device in a row: only the newer matters, unless the
        # newer is the last will, which needs the older to know when the device was last seen.
        return (isinstance(message, StatusReceived) and message.status.device == self.status.device
                and message.status.online)


@dataclass
class ProgressReceived(Message):
    """One job event, from any origin in the mesh."""

    progress: Progress
    received_at: float


@dataclass
class IdentityReceived(Message):
    """The device id of the agent on the broker we watch."""

    device: str


@dataclass
class ConnectionChanged(Message):
    """The feed connected to, or lost, its broker."""

    connected: bool
    detail: str = ""


@dataclass
class AnswerReceived(Message):
    """The answer to a prompt submitted from this TUI."""

    answer: Answer


@dataclass
class SubmitFailed(Message):
    """A prompt submitted from this TUI could not be answered."""

    job_id: str
    error: str
