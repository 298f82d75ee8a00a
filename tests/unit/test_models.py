import hashlib

import pytest

from edge_agent.errors import ModelError
from edge_agent.ops import modelcards as models
from edge_agent.ops.modelcards import ModelCard


def local_card(tmp_path, sha256=None, data=b"GGUF fake weights"):
    source = tmp_path / "source.gguf"
    source.write_bytes(data)
    return ModelCard(name="tiny", file="tiny.gguf", source={"kind": "url", "url": source.as_uri()},
                     sha256=sha256, size=len(data), quantization="Q4_0", context_length=512,
                     license="Apache-2.0", min_ram_mb=64)


def test_every_shipped_card_is_valid_and_only_the_default_has_a_known_digest():
    cards = {c.name: c for c in models.cards()}
    assert "smollm2-135m-instruct-q4_1" in cards
    assert len(cards) >= 8
    default = cards["smollm2-135m-instruct-q4_1"]
    assert default.source["kind"] == "pypi-wheel" and len(default.sha256) == 64
    for card in cards.values():
        assert card.file.endswith(".gguf") and card.min_ram_mb > 0 and card.license
        if card.sha256 is None:
            assert card.source["kind"] == "url", "a card without a digest is pinned on first download"


def test_a_card_without_digest_is_pinned_on_first_download_then_verified(tmp_path):
    card = local_card(tmp_path)
    directory = str(tmp_path / "models")
    seen = []
    path, what = models.fetch(card, directory, lambda done, total: seen.append((done, total)))
    assert what == "pinned" and path.read_bytes() == b"GGUF fake weights"
    assert models.pin_path(path).read_text().split()[0] == hashlib.sha256(b"GGUF fake weights").hexdigest()
    assert seen[-1][0] == len(b"GGUF fake weights"), "progress reaches the end"
    assert models.verify(card, directory) == path
    assert models.fetch(card, directory)[1] == "present"
    path.write_bytes(b"tampered")
    with pytest.raises(ModelError, match="does not match"):
        models.verify(card, directory)


def test_a_download_with_the_wrong_digest_is_discarded(tmp_path):
    card = local_card(tmp_path, sha256="0" * 64)
    with pytest.raises(ModelError, match="discarded"):
        models.fetch(card, str(tmp_path / "models"))
    assert not (tmp_path / "models" / "tiny.gguf").exists()


def test_resolving_names_and_paths(tmp_path):
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"x")
    assert models.resolve_model(str(gguf)) == (str(gguf), "x")
    with pytest.raises(ModelError, match="not found"):
        models.resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="not fetched yet"):
        models.resolve_model("qwen2.5-0.5b-instruct-q4_k_m", str(tmp_path))
    with pytest.raises(ModelError, match="no model card named"):
        models.resolve_model("no-such-model")
