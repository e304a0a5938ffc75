"""docs/workflow-contract.md and docs/case-input.json are written from the code (python -m app.contract --write):
they fail here when the code moved on without them. The journey they describe, with the CLI alone, runs in
tests/test_codec_cli.py."""

from __future__ import annotations

import json

from app import contract
from domain.models import CaseInput
from workflows.case import SIGNALLED


def test_the_contract_document_matches_the_code():
    assert contract.PATH.read_text(encoding="utf-8") == contract.render(), "run: python -m app.contract --write"
    assert contract.CASE_INPUT.read_text(encoding="utf-8") == contract.case_input_example(), "run: python -m app.contract --write"


def test_the_contract_names_every_update_signal_and_query_with_a_valid_example():
    text = contract.render()
    defn = contract._definition()
    for name in [n for n in defn.updates if n] + [n for n in defn.queries if n]:
        assert f"### {name}\n" in text, name
    for name in SIGNALLED:
        assert f"| `{name}` |" in text, name
    for name, ex in contract.EXAMPLES.items():
        ex.model.model_validate(ex.value)
        assert json.dumps(ex.value, ensure_ascii=False) in text, name
    CaseInput.model_validate_json(contract.CASE_INPUT.read_text(encoding="utf-8"))
    assert "--codec-endpoint" in text and "--codec-auth" in text
