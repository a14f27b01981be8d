"""The README's two set-up commands are what users and CI run: keep them real and in sync."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block, "README must open with a bash block holding the two set-up commands"
    return [ln for ln in block.group(1).splitlines() if ln and not ln.startswith("#")]


def test_readme_opens_with_two_setup_commands() -> None:
    main_job, tests = setup_commands()
    assert "pip install" in main_job and "vocoder resynth" in main_job and "vocoder score" in main_job
    assert "pip install" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci_lines


def test_readme_main_job_uses_bundled_demo_audio() -> None:
    main_job = setup_commands()[0]
    demo = REPO / "vocoder_cli" / "assets" / "demo"
    assert "vocoder_cli/assets/demo" in main_job
    assert len(list(demo.glob("*.flac"))) == 3
    assert (demo / "ATTRIBUTION.md").exists() and (demo / "LICENSE-CC-BY-SA-3.0.txt").exists()
