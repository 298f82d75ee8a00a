"""One exception tree for the whole project.

Every error a user can cause or meet derives from EdgeAgentError; the CLI turns
it into a single line on stderr and a non-zero exit status.
"""


class EdgeAgentError(Exception):
    """Base class: str(err) is a complete one-line message for the user."""


class ConfigError(EdgeAgentError):
    """A configuration file or option is missing or invalid."""


class ProtocolError(EdgeAgentError):
    """A wire message is malformed, oversized or of an unknown version."""


class ModelError(EdgeAgentError):
    """A model card, model file or inference failed."""


class MeshError(EdgeAgentError):
    """A broker, device or peer cannot be reached or does not answer in time."""


class AgentError(EdgeAgentError):
    """The agent had to stop: its store or its model failed in a way it cannot work around."""


class StorageError(AgentError):
    """The store cannot be read or written (disk full, I/O error, a damaged file).

    Distinct from every other failure in a message handler: a storage failure leaves
    the message unacknowledged for the broker to hand back once storage works again,
    while any other error is about the message itself and is dead-lettered.
    """


class DiskFull(StorageError):
    """The store's disk is full: the agent refuses new work and waits for room, losing nothing."""


class JobError(EdgeAgentError):
    """A submitted job was refused or failed."""
