"""Model names of the API: what each runs, and what /v1/models offers."""

import pytest

from edge_agent.api.names import Target, UnknownModel, listing, resolve
from edge_agent.wire.messages import Status

MODEL = "smollm2-135m-instruct-q4_1"
STATUSES = {d: Status(device=d, online=d != "edge-4", model=MODEL, layers=1, proposers=2,
                      peers=["edge-1", "edge-2", "edge-3"]) for d in ("edge-1", "edge-2", "edge-3", "edge-4")}


@pytest.mark.parametrize("name, target", [
    ("dmoa", Target("edge-1", None, None)),
    ("dmoa-m2k3", Target("edge-1", 2, 3)),
    ("dmoa-m0k0", Target("edge-1", 0, 0)),
    (f"{MODEL}@edge-3", Target("edge-3", 0, 0)),
    (MODEL, Target("edge-1", 0, 0)),
])
def test_names_choose_what_runs_and_where(name, target):
    assert resolve(name, "edge-1", STATUSES) == target


@pytest.mark.parametrize("name", ["gpt-4o", "dmoa-m9k1", "dmoa-m1k65", f"{MODEL}@edge-4", f"{MODEL}@edge-9",
                                  "other@edge-2", ""])
def test_unknown_or_offline_models_are_refused(name):
    with pytest.raises(UnknownModel):
        resolve(name, "edge-1", STATUSES)


def test_the_listing_names_every_live_device_model_and_resolves_back():
    ids = [e["id"] for e in listing("edge-1", STATUSES)]
    assert ids[0] == "dmoa" and "dmoa-m1k2" in ids
    assert [i for i in ids if "@" in i] == [f"{MODEL}@edge-{n}" for n in (1, 2, 3)]
    for model_id in ids:
        resolve(model_id, "edge-1", STATUSES)
