import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError


def test_yaml_then_environment_then_keywords(tmp_path, monkeypatch):
    path = tmp_path / "agent.yaml"
    path.write_text("device: edge-1\nmax_tokens: 100\nlayers: 2\n")
    monkeypatch.setenv("EDGE_AGENT_MAX_TOKENS", "120")
    cfg = load_config(path, proposers=3)
    assert (cfg.device, cfg.max_tokens, cfg.layers, cfg.proposers) == ("edge-1", 120, 2, 3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_tokens: 10\n", "'device' is required"),
        ("device: Edge_1\n", "invalid device id"),
        ("device: a\nsurprise: 1\n", "unknown setting"),
        ("device: a\nmax_tokens: many\n", "not a valid int"),
        ("device: a\npolicy: fastest\n", "policy must be"),
        ("device: a\nmax_tokens: 5000\n", "below n_ctx"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_bad_settings_fail_with_one_clear_line(tmp_path, text, message):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
