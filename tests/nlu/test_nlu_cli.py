"""``abonent nlu parse|eval|review`` through typer's CliRunner (docs/commands.md)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from abonent.cli import app

FIXTURE_KB = Path(__file__).parent / "kb_fixture"
runner = CliRunner()


def _args(cache: Path) -> list[str]:
    return ["--kb", str(FIXTURE_KB), "--cache-dir", str(cache)]


def test_parse_one_json_per_line(nlu_cache: Path) -> None:
    lines = ["Здравствуйте", "gthtlfnm gjrfpfybz", "какая погода в Перми", "цена за квт"]
    result = runner.invoke(app, ["nlu", "parse", *_args(nlu_cache)], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["text"] for o in out] == lines
    assert set(out[0]) == {"text", "intent", "confidence"}
    assert [o["intent"] for o in out] == ["greeting", "readings_submit", "fallback", "tariffs"]
    assert all(isinstance(o["confidence"], float) for o in out)


def test_eval_reports(tmp_path: Path, nlu_cache: Path) -> None:
    tsv = tmp_path / "set.tsv"
    tsv.write_text(
        "text\tintent\tnote\n"
        "добрый вечер\tgreeting\tx\n"
        "нет света\tpower_outage\t\n"
        "сколько стоит киловатт\ttariffs\t\n"
        "рецепт борща\tfallback\t\n"
        "нет света\ttariffs\twrong on purpose\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["nlu", "eval", str(tsv), *_args(nlu_cache)])
    assert result.exit_code == 0, result.output
    assert "accuracy: 0.8000 (4/5)" in result.stdout
    assert "power_outage" in result.stdout and "precision" in result.stdout
    assert "tariffs → power_outage: 1" in result.stdout
    assert "[tariffs → power_outage" in result.stdout


def test_eval_bad_header(tmp_path: Path, nlu_cache: Path) -> None:
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("a\tb\nx\ty\n", encoding="utf-8")
    result = runner.invoke(app, ["nlu", "eval", str(tsv), *_args(nlu_cache)])
    assert result.exit_code == 2


def test_review_groups(tmp_path: Path, nlu_cache: Path) -> None:
    messages = tmp_path / "unrecognised.txt"
    messages.write_text(
        "сколько стоит ночной тариф\nсколько стоит ночной тариф?\nночной тариф цена\n"
        "где ближайшая аптека\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["nlu", "review", str(messages), "--json", *_args(nlu_cache)])
    assert result.exit_code == 0, result.output
    groups = [json.loads(line) for line in result.stdout.splitlines()]
    assert groups[0]["size"] == 3
    assert groups[0]["intents"][0]["intent"] == "tariffs"
    assert sum(g["size"] for g in groups) == 4
