"""The README documents every frame column and every setting, and starts with the two-command Quick start."""

from __future__ import annotations

import re
from pathlib import Path

from clusternb import frames
from clusternb.config import ClusterNB

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_quick_start_is_exactly_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in section.strip().splitlines()]
    assert commands == ["make lab", "make test"]


def test_every_column_is_documented() -> None:
    for table in (frames.STATUS_COLUMNS, frames.WORKER_COLUMNS, frames.METRIC_COLUMNS, frames.ALERT_COLUMNS):
        for col in table:
            assert re.search(rf"\| `{col.name}` \|", README), col.name


def test_every_setting_is_documented() -> None:
    for name in ClusterNB.class_trait_names(config=True):
        assert f"| `{name}` |" in README, name


def test_readme_tables_are_generated_from_the_code() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "readme_tables.py"
    result = subprocess.run([sys.executable, str(script), "--check"], check=False)
    assert result.returncode == 0, "README.md is stale: run `python scripts/readme_tables.py`"


def test_readme_rules_example_loads(tmp_path: Path) -> None:
    from clusternb.alerting import load_rules

    example = README.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "rules.yaml").write_text(example)
    rules = {r.name: r for r in load_rules(path=tmp_path / "rules.yaml")}
    assert rules["cpu"].threshold == 95 and not rules["swap"].enabled
    assert rules["gpu_hot"].render("n1", 83.4) == "n1: GPU at 83 °C"
