"""python -m cds_service evaluate: offline runs of a record Bundle or a CDS Hooks request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.__main__ import main
from cds_service.knowledge import Knowledge
from tests.support import FIXTURES, REPO, assert_valid, hook_request, manifest, rule_ids

SCENARIOS = manifest()["scenarios"]


@pytest.mark.parametrize("entry", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_evaluate_prints_the_expected_cards(entry: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(FIXTURES / f"{entry['name']}.json")]) == 0
    out = capsys.readouterr().out
    assert "as of 2026-11-20T15:00:00+00:00" in out
    for card in entry["expected_cards"] or []:  # type: ignore[attr-defined]
        assert f"{card['indicator'].upper():8} [{card['rule_id']}]" in out
    if not entry["expected_cards"]:
        assert "WARNING " not in out
        assert "CRITICAL " not in out


def test_evaluate_json_is_a_valid_response(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--json", str(FIXTURES / "receptor-her2-positive-ihc.json")]) == 0
    body = json.loads(capsys.readouterr().out)
    assert_valid(body, "ServiceResponse")
    assert ("receptor-her2-positive", "critical") in rule_ids(body)


def test_evaluate_a_cds_hooks_request(tmp_path: Path, knowledge: Knowledge, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(hook_request(knowledge, "partner-missing")))
    assert main(["evaluate", "--json", "--now", "2026-11-20T15:00:00+00:00", str(path)]) == 0
    assert ("partner-missing", "warning") in rule_ids(json.loads(capsys.readouterr().out))


def test_evaluate_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"hook": "order-sign"}')
    assert main(["evaluate", str(path)]) == 2
    assert "not a valid CDS Hooks" in capsys.readouterr().err
    path.write_text("[")
    assert main(["evaluate", str(path)]) == 2


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cds_service", "evaluate", str(FIXTURES / "partner-missing.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "[partner-missing]" in result.stdout


def test_serve_refuses_a_bad_catalogue_with_one_clear_message(tmp_path: Path) -> None:
    import shutil

    cards = tmp_path / "cards"
    shutil.copytree(REPO / "cards", cards)
    (cards / "partner-missing.yaml").write_text("rule_id: partner-missing\n")
    result = subprocess.run(
        [sys.executable, "-m", "cds_service", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env={"CDS_CARDS_DIR": str(cards), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("cannot start: partner-missing.yaml")
    assert "Traceback" not in result.stderr
