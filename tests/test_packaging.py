"""Packaging that CI cannot build here: the Dockerfile's promises, the README's commands, .ci/run."""

from __future__ import annotations

import re

from tests.support import REPO


def test_dockerfile_runs_non_root_with_a_health_check() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1]  # discovery needs a caller's JWT
    assert "CDS_WORKERS" in text
    for source in re.findall(r"^COPY (?!--from=)(\S+) ", text, re.MULTILINE):
        assert (REPO / source).exists(), source
    stages = re.findall(r"^FROM \S+ AS (\S+)", text, re.MULTILINE)
    for stage in re.findall(r"^COPY --from=(\S+) ", text, re.MULTILINE):
        assert stage in stages, stage


def test_the_image_compiles_the_hot_path_modules_and_refuses_to_ship_without_them() -> None:
    text = (REPO / "Dockerfile").read_text()
    native_stage = text.split("AS native", 1)[1].split("\nFROM ", 1)[0]
    assert "scripts/build_native.py" in native_stage
    assert "n.status == 'compiled'" in native_stage
    assert re.search(r"^COPY --from=native /app/cds_service \./cds_service", text, re.MULTILINE)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^(\./scripts/\w+)", readme.split("```", 2)[1], re.MULTILINE)
    assert commands == ["./scripts/serve", "./scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def test_every_setting_is_documented() -> None:
    from cds_service.settings import Settings

    readme = (REPO / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"CDS_{name.upper()}" in readme, name
