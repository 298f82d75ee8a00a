"""A client takes a job's chunks only with the submit's secret, and completes the text from the answer."""

import queue
import threading
import types

from edge_agent.client.submit import SubmitClient
from edge_agent.wire.messages import Answer, Chunk
from edge_agent.wire.streaming import Assembler

SECRET = "ab" * 16


def client_waiting_for(job_id, got):
    client = SubmitClient.__new__(SubmitClient)  # the callbacks alone, without a broker
    client._lock = threading.Lock()
    client._streams = {job_id: (SECRET, Assembler(), got.append)}
    client._answers = {}
    return client


def message(m):
    return types.SimpleNamespace(payload=m.encode(), topic="t")


def test_chunks_without_the_secret_are_ignored_and_the_answer_completes_the_text():
    got = []
    client = client_waiting_for("j", got)
    client._on_chunk(message(Chunk(job_id="j", origin="edge-1", offset=0, text="Hel", secret=SECRET)))
    client._on_chunk(message(Chunk(job_id="j", origin="edge-6", offset=3, text="LO FORGED", secret="cd" * 16)))
    client._on_chunk(message(Chunk(job_id="j", origin="edge-6", offset=3, text="LO FORGED")))
    client._on_chunk(message(Chunk(job_id="j", origin="edge-1", offset=0, text="Hel", secret=SECRET)))
    assert got == ["Hel"]
    inbox = queue.Queue()
    client._answers["j"] = (inbox, SECRET)
    client._on_answer(message(Answer(job_id="j", origin="edge-6", ok=True, answer="Hello!", secret="cd" * 16)))
    assert got == ["Hel"] and inbox.empty(), "a forged answer neither completes the stream nor ends the wait"
    client._on_answer(message(Answer(job_id="j", origin="edge-1", ok=True, answer="Hello!", secret=SECRET)))
    assert got == ["Hel", "lo!"] and inbox.get_nowait().answer == "Hello!"
    client._on_chunk(message(Chunk(job_id="j", origin="edge-1", offset=3, text="lo!", secret=SECRET)))
    assert got == ["Hel", "lo!"], "nothing after the answer"
