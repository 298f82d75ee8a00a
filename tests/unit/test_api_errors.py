"""How a job's outcome becomes an HTTP status in OpenAI's error shape."""

import pytest

from edge_agent.api.chat import _checked
from edge_agent.api.errors import ApiError
from edge_agent.errors import JobError, MeshError, ProtocolError
from edge_agent.wire.messages import Answer


@pytest.mark.parametrize("value, status, retry", [
    (Answer(job_id="j", origin="edge-1", ok=False, error="mesh utilisation too high", reason="overloaded"), 503, 5),
    (Answer(job_id="j", origin="edge-1", ok=False, error="the conversation needs", reason="invalid"), 400, None),
    (Answer(job_id="j", origin="edge-1", ok=False, error="layer 1 produced no answers", reason="failed"), 502, None),
    (JobError("no answer within 1 s"), 504, None),
    (ProtocolError("the prompt makes a message of 300000 bytes"), 400, None),
    (MeshError("device edge-9 is offline"), 503, 5),
])
def test_each_failure_has_its_status(value, status, retry):
    with pytest.raises(ApiError) as caught:
        _checked("answer", value)
    err = caught.value
    assert (err.status, err.retry_after_s) == (status, retry)
    response = err.response()
    assert response.status_code == status
    assert (response.headers.get("Retry-After") == str(retry)) if retry else "Retry-After" not in response.headers
    assert err.body()["error"]["message"]


def test_a_good_answer_passes():
    answer = Answer(job_id="j", origin="edge-1", ok=True, answer="fine")
    assert _checked("answer", answer) is answer
