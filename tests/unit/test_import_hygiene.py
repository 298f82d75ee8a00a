"""The headless core must not pull in the TUI or the model runtime."""

import subprocess
import sys

CORE = [
    "edge_agent.agent", "edge_agent.cli", "edge_agent.client", "edge_agent.moa", "edge_agent.mesh",
    "edge_agent.store", "edge_agent.protocol", "edge_agent.localmesh", "edge_agent.engine.worker",
    "edge_agent.engine.base", "edge_agent.commands.submit", "edge_agent.commands.run",
    "edge_agent.commands.status", "edge_agent.commands.mesh",
]


def test_core_modules_import_neither_textual_nor_llama_cpp():
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'llama_cpp'))\n"
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
