"""Commands that plugins add to ``ingest`` (``ingest_register_commands``).

The throwaway plugins ``tests/plugins/cli_greeting.py`` and ``cli_clash.py`` are loaded by
dotted path through ``INGEST_PLUGINS``, as a user's installed plugin would be by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from ingest.cli import main

TESTS = Path(__file__).resolve().parent
GREETING = "plugins.cli_greeting"
CLASH = "plugins.cli_clash"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The plugins setting is read from the working folder's config file too.
    monkeypatch.chdir(tmp_path)


def ingest(*args: str, plugins: str | None = None, **env: str) -> Result:
    if plugins is not None:
        env["INGEST_PLUGINS"] = plugins
    return CliRunner().invoke(main, list(args), env=env)


def commands_listed(result: Result) -> list[str]:
    """The names under ``Commands:`` in ``ingest --help``."""
    lines = result.stdout.split("Commands:\n", 1)[1].splitlines()
    return [line.split()[0] for line in lines if line.startswith("  ")]


def test_a_plugin_command_is_listed_and_runs() -> None:
    listed = ingest("--help", plugins=GREETING)
    assert listed.exit_code == 0, listed.output
    assert commands_listed(listed) == ["config", "greet", "plugins", "run", "search"]
    assert "Greet NAME (a test plugin's command)." in listed.stdout

    greeted = ingest("greet", "heron", "--shout", "--times", "2", plugins=GREETING)
    assert (greeted.exit_code, greeted.stdout) == (0, "hello, HERON\nhello, HERON\n")
    assert "--shout" in ingest("greet", "--help", plugins=GREETING).stdout


def test_a_plugin_command_chooses_its_exit_code() -> None:
    result = ingest("greet", "heron", "--times", "0", plugins=GREETING)
    assert (result.exit_code, result.stdout) == (5, "")


def test_a_plugin_commands_usage_error_is_one_line_with_exit_4() -> None:
    result = ingest("greet", "heron", "--times", "-1", plugins=GREETING)
    assert result.exit_code == 4
    assert result.stderr == "ERROR: --times must be 0 or more, not -1\n"


def test_a_plugin_commands_crash_is_an_internal_error_with_its_trace() -> None:
    result = ingest("greet", "crash", plugins=GREETING)
    assert result.exit_code == 3
    assert result.stderr.startswith("INTERNAL ERROR: ingest crashed")
    assert "RuntimeError: the greeting plugin crashed on purpose" in result.stderr
    assert "cli_greeting.py" in result.stderr  # the trace points into the plugin


def test_a_plugin_command_needs_its_plugin_named() -> None:
    """Installing (or having) a plugin adds no command until the run would load it."""
    assert "greet" not in commands_listed(ingest("--help"))
    unknown = ingest("greet", "heron")
    assert unknown.exit_code == 2 and "No such command 'greet'" in unknown.stderr


def test_the_plugins_setting_of_the_config_file_names_command_plugins(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text(f"plugins: [{GREETING}]\n")
    assert ingest("greet", "egret").stdout == "hello, egret\n"


def test_search_comes_from_the_sqlite_plugin_and_goes_when_it_is_blocked() -> None:
    assert "search" in commands_listed(ingest("--help"))
    blocked = ingest("--help", plugins="no:sqlite")
    assert commands_listed(blocked) == ["config", "plugins", "run"]
    gone = ingest("search", "corpus.db", "herons", plugins="no:sqlite")
    assert gone.exit_code == 2 and "No such command 'search'" in gone.stderr


def test_a_command_plugin_that_cannot_load_spoils_only_unknown_commands() -> None:
    helped = ingest("--help", plugins="plugins.no_such_plugin")
    assert helped.exit_code == 0
    assert commands_listed(helped) == ["config", "plugins", "run"]
    assert helped.stderr.startswith("WARNING: plugin commands are not listed: plugin ")
    assert "plugins.no_such_plugin" in helped.stderr

    failed = ingest("greet", "heron", plugins=f"{GREETING},plugins.no_such_plugin")
    assert failed.exit_code == 4
    assert failed.stderr.startswith("ERROR: plugin 'plugins.no_such_plugin'")

    # ingest's own commands never load the plugins for their commands.
    assert ingest("config", "--help", plugins="plugins.no_such_plugin").exit_code == 0


def test_two_plugins_adding_one_name_is_an_error_naming_both() -> None:
    result = ingest("greet", "heron", plugins=f"{GREETING},{CLASH}")
    assert result.exit_code == 4
    assert result.stderr.startswith("ERROR: two plugins add the command 'greet': plugins.cli_")
    assert GREETING in result.stderr and CLASH in result.stderr
    assert result.stderr.endswith("; block one of them with INGEST_PLUGINS=no:NAME\n")


def test_a_plugin_may_not_take_a_name_of_ingest_itself() -> None:
    result = ingest("greet", "heron", plugins=f"{GREETING},{CLASH}", CLI_CLASH_NAME="run")
    assert result.exit_code == 4
    assert result.stderr == (
        "ERROR: the plugin command 'run' (plugins.cli_clash) has the name of one of "
        "ingest's own commands; rename it\n"
    )
    listed = ingest("--help", plugins=CLASH, CLI_CLASH_NAME="config")
    assert "'config' (plugins.cli_clash)" in listed.stderr
    assert commands_listed(listed) == ["config", "plugins", "run"]


@pytest.mark.parametrize(
    ("args", "loads_plugins"),
    [
        (["--version"], False),
        (["run", "--help"], False),
        (["plugins", "--help"], False),
        (["--help"], True),
        (["search", "--help"], True),
    ],
)
def test_plugins_load_only_for_their_commands(
    tmp_path: Path, args: list[str], loads_plugins: bool
) -> None:
    """A real ``ingest`` process: what it imported says whether the plugins were loaded."""
    script = (
        "import sys\n"
        "from ingest.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('ingest_plugins')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    loaded = done.stdout.rpartition("LOADED ")[2]
    assert ("ingest_plugins.sqlite_sink" in loaded) is loads_plugins, loaded
    assert ("ingest_plugins.sqlite_search" in loaded) is loads_plugins, loaded


def test_a_plugin_command_runs_in_a_real_ingest_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["INGEST_PLUGINS"] = GREETING
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    ingest_command = Path(sys.executable).with_name("ingest")
    done = subprocess.run(
        [str(ingest_command), "greet", "kingfisher"], cwd=tmp_path, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "hello, kingfisher\n"), done.stderr


def test_a_plugin_crashing_in_the_hook_is_reported_with_its_trace() -> None:
    helped = ingest("--help", plugins=f"{GREETING},plugins.cli_broken")
    assert helped.exit_code == 0
    assert commands_listed(helped) == ["config", "plugins", "run"]
    assert helped.stderr.startswith("WARNING: plugin commands are not listed: a plugin crashed")
    assert "RuntimeError: the broken plugin cannot add its commands" in helped.stderr
    assert "cli_broken.py" in helped.stderr

    failed = ingest("greet", "heron", plugins=f"{GREETING},plugins.cli_broken")
    assert failed.exit_code == 3
    assert failed.stderr.startswith("INTERNAL ERROR: ingest crashed")
    assert "cli_broken.py" in failed.stderr
