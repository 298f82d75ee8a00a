"""`edge-agent api`: serve the OpenAI-compatible API of this board."""

from __future__ import annotations

import logging

import click

from edge_agent.config import AgentConfig, load_config, read_secret
from edge_agent.errors import ConfigError


def read_key(cfg: AgentConfig) -> str:
    if not cfg.api_key_file:
        raise ConfigError("api_key_file is not set: the API serves only clients holding its key")
    key = read_secret(cfg.api_key_file, "API key")
    if len(key) < 16:
        raise ConfigError(f"the key in {cfg.api_key_file} is shorter than 16 characters")
    return key


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), envvar="EDGE_AGENT_CONFIG",
              help="The agent's settings (YAML): device, broker, api_host, api_port, api_key_file.")
@click.option("--host", default=None, help="Listen address (default: api_host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Listen port (default: api_port).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def api(config_path: str | None, host: str | None, port: int | None, log_level: str) -> None:
    """Serve /v1/chat/completions, /v1/models, /health and /metrics for this board's agent."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(config_path, api_host=host, api_port=port)
    key = read_key(cfg)
    # Imported here so that the rest of the CLI never loads the web stack.
    import uvicorn

    from edge_agent.api.app import ApiSettings, create_app
    from edge_agent.api.backend import MeshBackend
    from edge_agent.client.submit import SubmitClient
    from edge_agent.wire.mqtt import BrokerAddress, Credentials

    password = read_secret(cfg.broker_password_file, "broker password") if cfg.broker_password_file else ""
    credentials = Credentials(cfg.broker_username, password, cfg.tls_ca, cfg.tls_cert, cfg.tls_key)
    client = SubmitClient(BrokerAddress(cfg.broker_host, cfg.broker_port), cfg.device, credentials)
    backend = MeshBackend(client, cfg.api_timeout_s, cfg.api_max_concurrent)
    settings = ApiSettings(key=key, final_max_tokens=cfg.final_max_tokens, max_body_bytes=cfg.max_message_bytes,
                           max_concurrent=cfg.api_max_concurrent)
    app = create_app(backend, settings)
    try:
        server = uvicorn.Server(uvicorn.Config(app, host=cfg.api_host, port=cfg.api_port,
                                               log_level=log_level.lower(), access_log=False))
        server.run()
    finally:
        backend.close()
    if not server.started:
        raise ConfigError(f"cannot serve on {cfg.api_host}:{cfg.api_port} (address in use or not on this host?)")
