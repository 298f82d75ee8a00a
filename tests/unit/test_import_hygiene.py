"""The headless core must not pull in the TUI or the model runtime."""

import subprocess
import sys

CORE = [
    "edge_agent.node.agent", "edge_agent.cli", "edge_agent.client.submit", "edge_agent.node.coordinator",
    "edge_agent.wire.mqtt", "edge_agent.node.store", "edge_agent.wire.messages", "edge_agent.ops.localmesh",
    "edge_agent.engine.worker", "edge_agent.engine.base", "edge_agent.commands.submit", "edge_agent.commands.run",
    "edge_agent.commands.status", "edge_agent.commands.mesh",
]


# The web stack belongs to edge_agent.api alone: a board running only the agent never loads it.
EDGE_ONLY = ("textual", "llama_cpp", "fastapi", "starlette", "uvicorn", "sse_starlette", "prometheus_client",
             "openai")


def test_core_modules_import_neither_textual_nor_llama_cpp_nor_the_web_stack():
    code = (
        "import importlib, sys\n"
        f"for name in {CORE + ['edge_agent.wire.streaming', 'edge_agent.engine.counter']!r}: "
        "importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {EDGE_ONLY!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"


def test_the_cli_help_loads_no_subcommand_module():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edge_agent.cli import cli\n"
        "result = CliRunner().invoke(cli, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('edge_agent.commands.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
