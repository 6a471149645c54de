"""Regenerate the settings and frame-schema tables in README.md from the code (the single source of truth).

python scripts/readme_tables.py          # rewrite README.md
python scripts/readme_tables.py --check  # exit 1 if README.md is out of date (used by the tests)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clusternb import frames  # noqa: E402
from clusternb.config import ClusterNB  # noqa: E402


def _dtype(dtype: object) -> str:
    cats = getattr(dtype, "categories", None)
    return "category (ordered: " + " < ".join(cats) + ")" if cats is not None else str(dtype)


def _columns(cols: tuple[frames.Column, ...]) -> str:
    rows = ["| column | dtype | meaning |", "|---|---|---|"]
    rows += [f"| `{c.name}` | {_dtype(c.dtype)} | {c.doc} |" for c in cols]
    return "\n".join(rows)


def settings_table() -> str:
    rows = ["| setting | default | environment variable | meaning |", "|---|---|---|---|"]
    for name, trait in sorted(ClusterNB.class_traits(config=True).items()):
        default = "host name" if name == "node_name" else repr(trait.default())
        rows.append(f"| `{name}` | `{default}` | `CLUSTERNB_{name.upper()}` | {' '.join(trait.help.split())} |")
    return "\n".join(rows)


def schemas() -> str:
    parts = [
        ("`cluster_status()`: one row", frames.STATUS_COLUMNS),
        ("`workers()`: one row per node, index `node` (string)", frames.WORKER_COLUMNS),
        (
            "`metrics()`: one row per node per sample; columns `time` (datetime64[ns, UTC]), `node` (string), "
            "then the chosen fields",
            frames.METRIC_COLUMNS,
        ),
        ("`alerts()`: one row per alert, newest first", frames.ALERT_COLUMNS),
        ("`cache_status()`: one row per namespace plus `(all)`, index `namespace`", frames.CACHE_COLUMNS),
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
