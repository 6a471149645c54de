"""Regenerate the settings and frame-schema tables in README.md from the code: the settings from the
Configurable, the field tables from the field catalogue (clusternb.schema, typed in clusternb.columns).

python scripts/readme_tables.py          # rewrite README.md
python scripts/readme_tables.py --check  # exit 1 if README.md is out of date (used by the tests)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clusternb import columns  # noqa: E402
from clusternb.config import ClusterNB  # noqa: E402


def column_row(c: columns.Column) -> str:
    """One column's row of a README field table (the tests look for these rows)."""
    return f"| `{c.name}` | {columns.dtype_text(c.dtype)} | {c.unit} | {c.doc} |"


def _columns(cols: tuple[columns.Column, ...]) -> str:
    rows = ["| column | dtype | unit | meaning |", "|---|---|---|---|"]
    rows += [column_row(c) for c in cols]
    return "\n".join(rows)


def settings_table() -> str:
    rows = ["| setting | default | environment variable | meaning |", "|---|---|---|---|"]
    for name, trait in sorted(ClusterNB.class_traits(config=True).items()):
        default = "host name" if name == "node_name" else repr(trait.default())
        rows.append(f"| `{name}` | `{default}` | `CLUSTERNB_{name.upper()}` | {' '.join(trait.help.split())} |")
    return "\n".join(rows)


def schemas() -> str:
    parts = [
        ("`cluster_status()`: one row", columns.STATUS_COLUMNS),
        ("`workers()`: one row per node, index `node` (string)", columns.WORKER_COLUMNS),
        (
            "`metrics()`: one row per node per sample; columns `time` (datetime64[ns, UTC]), `node` (string), "
            "then the chosen fields",
            columns.METRIC_COLUMNS,
        ),
        ("`alerts()`: one row per alert, newest first", columns.ALERT_COLUMNS),
        (
            "`kernels()`: one row per Jupyter kernel, largest memory first, index `kernel_id` (string)",
            columns.KERNEL_COLUMNS,
        ),
        ("`cache_status()`: one row per namespace plus `(all)`, index `namespace`", columns.CACHE_COLUMNS),
    ]
    return "\n\n".join(f"#### {title}\n\n{_columns(cols)}" for title, cols in parts)


def render(text: str) -> str:
    for name, body in (("settings", settings_table()), ("schemas", schemas())):
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- {name}:start/end --> markers")
        text = pattern.sub(lambda m, b=body: m.group(1) + b + m.group(2), text)
    return text


if __name__ == "__main__":
    readme = ROOT / "README.md"
    current = readme.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        sys.exit(0 if wanted == current else 1)
    readme.write_text(wanted)
