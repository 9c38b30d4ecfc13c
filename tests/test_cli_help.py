"""``abonent … --help`` as an admin reads it, and the database a command works on.

Every command of the tree is asked for its help: no Python types (``<bool>``,
``<list[str]>``, ``{file}``) and no text cut off, at a usual and a narrow width. A
reading command on a fresh directory must say which database it looked for and create
nothing; ``--demo`` points it at the demo's data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from abonent.billing.csv_import import HEADER
from abonent.cli import app
from abonent.config import get_settings

PYTHON_TYPES = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\]|text|file)>|\{\w+\}")


def command_paths() -> list[list[str]]:
    """Every command and group of ``abonent``, as the words typed after it."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(root, [])
    return paths


@pytest.fixture
def fresh_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new working directory with no database settings (the options set them)."""
    monkeypatch.chdir(tmp_path)
    forget_options(monkeypatch)
    yield tmp_path
    get_settings.cache_clear()


def test_the_tree_has_every_command() -> None:
    paths = {" ".join(p) for p in command_paths()}
    for expected in ("serve", "demo", "billing import", "nlu parse", "users list", "stats"):
        assert expected in paths


@pytest.mark.parametrize("width", [100, 80])
@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "abonent")
def test_help_reads_as_words(path: list[str], width: int) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    assert not PYTHON_TYPES.search(result.output), result.output
    assert "…" not in result.output.replace("+7…", ""), result.output  # nothing cut off


def test_options_have_word_metavars() -> None:
    out = CliRunner().invoke(app, ["users", "add", "--help"], env={"COLUMNS": "100"}).output
    assert re.search(r"--max-chats\s+N\s", out)
    assert re.search(r"--role\s+ROLE\s", out)
    out = CliRunner().invoke(app, ["stats", "export", "--help"], env={"COLUMNS": "100"}).output
    assert re.search(r"stats export \[OPTIONS\] REPORT *\n", out)
    assert re.search(r"--from\s+DATE\s", out)
    out = CliRunner().invoke(app, ["stats", "summary", "--help"], env={"COLUMNS": "100"}).output
    # A flag takes no value, so nothing stands after it.
    assert re.search(r"--json\s{2,}One JSON object", out)


def test_billing_import_help_shows_the_whole_header() -> None:
    out = CliRunner().invoke(app, ["billing", "import", "--help"], env={"COLUMNS": "80"}).output
    assert re.search(r"billing import \[OPTIONS\] FILE\.csv *\n", out)
    assert ",".join(HEADER) in out
    assert "two_zone" in out and "readings_date" in out


def test_reading_command_refuses_to_invent_a_database(fresh_dir: Path) -> None:
    result = CliRunner().invoke(app, ["users", "list"])
    assert result.exit_code == 1
    missing = fresh_dir / "abonent.db"
    assert f"Database: SQLite file {missing}" in result.stderr
    assert f"there is no database at {missing}" in result.stderr
    assert "abonent --demo" in result.stderr and "--database" in result.stderr
    assert result.stdout == ""
    assert list(fresh_dir.iterdir()) == []


def forget_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process starts with: the options set the environment of this one."""
    monkeypatch.delenv("ABONENT_DATABASE_URL", raising=False)
    monkeypatch.delenv("ABONENT_CONFIG", raising=False)
    get_settings.cache_clear()


def test_demo_option_points_at_the_demo_database(
    fresh_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["--demo", "users", "add", "anna", "--password", "secret-1"])
    assert added.exit_code == 0, added.output
    demo_db = fresh_dir / "abonent-demo.db"
    assert demo_db.is_file() and not (fresh_dir / "abonent.db").exists()
    listed = runner.invoke(app, ["--demo", "users", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.startswith("anna\toperator")
    assert f"Database: SQLite file {demo_db}" in listed.stderr
    # A new process without the option looks for the default database, and misses it.
    forget_options(monkeypatch)
    plain = runner.invoke(app, ["users", "list"])
    assert plain.exit_code == 1
    assert "The demo's data is here, in abonent-demo.db" in plain.stderr


def test_database_option_and_stats(fresh_dir: Path) -> None:
    url = f"sqlite:///{fresh_dir / 'mine.db'}"
    assert CliRunner().invoke(app, ["--database", url, "migrate"]).exit_code == 0
    status = CliRunner().invoke(app, ["--database", url, "stats", "status"])
    assert status.exit_code == 0, status.output
    assert f"Database: SQLite file {fresh_dir / 'mine.db'}" in status.stderr
    assert status.stdout.lstrip().startswith("{")
