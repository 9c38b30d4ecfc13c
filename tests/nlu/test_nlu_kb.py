"""The knowledge base: loading, validation, fingerprint, answer rendering; the real KB."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from abonent.nlu.kb import DEFAULT_KB_DIR, KBError, KnowledgeBase

FIXTURE_KB = Path(__file__).parent / "kb_fixture"
TAXONOMY = Path(__file__).resolve().parents[3] / "shared" / "nlu" / "intents.yaml"


def test_loads_fixture() -> None:
    kb = KnowledgeBase.load(FIXTURE_KB)
    assert set(kb.intents) == {
        "greeting",
        "operator",
        "payment_methods",
        "power_outage",
        "readings_submit",
        "tariffs",
    }
    assert kb.intents["tariffs"].kind == "faq"
    assert len(kb.out_of_scope) >= 10
    texts, labels = kb.training_data()
    assert len(texts) == len(labels)
    assert labels.count("fallback") == len(kb.out_of_scope)
    assert len(kb.fingerprint) == 64
    assert kb.fingerprint == KnowledgeBase.fingerprint_of(FIXTURE_KB)


def test_fingerprint_changes_with_a_file(kb_copy: Path) -> None:
    before = KnowledgeBase.fingerprint_of(kb_copy)
    path = kb_copy / "tariffs.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert KnowledgeBase.fingerprint_of(kb_copy) != before


def test_render_drops_lines_with_missing_placeholders() -> None:
    kb = KnowledgeBase.load(FIXTURE_KB)
    text, buttons, links = kb.render(
        "tariffs", {"links.tariffs": "https://example.org/t", "company.name": "X"}
    )
    assert "https://example.org/t" in text
    assert "Звоните" not in text  # {company.call_center_phone} missing
    assert [link.url for link in links] == ["https://example.org/t"]  # {links.app} missing
    assert buttons == []
    text, buttons, _ = kb.render("readings_submit", {})
    assert text.startswith("Чтобы передать")
    assert [b.payload for b in buttons] == ["readings"]
    with pytest.raises(KeyError):
        kb.render("nope", {})


def test_id_must_match_file_name(tmp_path: Path) -> None:
    (tmp_path / "tariffs.yaml").write_text("id: other\nexamples: [a]\n", encoding="utf-8")
    with pytest.raises(KBError, match=r"tariffs\.yaml"):
        KnowledgeBase.load(tmp_path)


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("id: x\nexamples: [a\n", encoding="utf-8")
    with pytest.raises(KBError, match=r"x\.yaml"):
        KnowledgeBase.load(tmp_path)


def test_bad_kind_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("id: x\nkind: maybe\nexamples: [a]\n", encoding="utf-8")
    with pytest.raises(KBError):
        KnowledgeBase.load(tmp_path)


def _real_kb_problems() -> list[str]:
    taxonomy = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))
    kb = KnowledgeBase.load(DEFAULT_KB_DIR)
    problems = []
    for intent_id, spec in taxonomy.items():
        intent = kb.intents.get(intent_id)
        if intent is None:
            problems.append(f"{intent_id}: missing")
            continue
        if len(intent.examples) < 50:
            problems.append(f"{intent_id}: {len(intent.examples)} examples")
        if spec.get("kind") == "faq" and (intent.answer is None or not intent.answer.text.strip()):
            problems.append(f"{intent_id}: no answer")
        if intent.kind != spec.get("kind"):
            problems.append(f"{intent_id}: kind {intent.kind} != {spec.get('kind')}")
    if not kb.out_of_scope:
        problems.append("_out_of_scope.yaml: no examples")
    return problems


@pytest.mark.skipif(not TAXONOMY.exists(), reason="shared/nlu/intents.yaml is not beside the repo")
def test_real_knowledge_base_covers_the_taxonomy() -> None:
    problems = _real_kb_problems()
    assert problems == [], "the knowledge base is incomplete: " + "; ".join(problems)
