"""The ``clusternb`` command: the same queries as the Python API, as readable tables or ``--json``.

Errors a user can fix (a bad ``--since``, an unknown node, an invalid setting) print one line on stderr and
exit with status 2; they never print a traceback. A query that could not reach the configured Redis still
prints what this process knows, says so in one line on stderr and exits with status 3, so a script never
takes an empty table for an empty cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from clusternb import arguments, schema, tables, units, vocab
from clusternb import cli_text as text
from clusternb._version import __version__
from clusternb.config import ClusterNB, load_config
from clusternb.redisio.errors import RedisFault

if TYPE_CHECKING:
    from clusternb.queries import Client

EPILOG = """\
Settings, highest priority first: options such as --redis; clusternb_config.py/json in Jupyter's config
path (or the file named by $CLUSTERNB_CONFIG); CLUSTERNB_* environment variables (CLUSTERNB_REDIS_URL,
CLUSTERNB_INTERVAL, ...); built-in defaults. `clusternb config` lists every setting.

Exit status: 0 success; 2 bad input (one line on stderr); 3 the configured Redis could not be reached (down,
unreachable, wrong password): the output is then this process's own view and one line on stderr says so.
"""


def _cmd_status(client: Client, args: argparse.Namespace) -> str:
    import pandas as pd

    df = client.cluster_status()
    if args.json:
        return text.as_json(df)
    row = df.iloc[0]
    lines = [
        f"health       {row['health']}  (as of {text.clock(row['as_of'])}, "
        + ("no data yet)" if pd.isna(row["data_age_s"]) else f"data {text.seconds(row['data_age_s'])} old)"),
        f"nodes        {row['nodes_total']} total: {row['nodes_online']} online, {row['nodes_stale']} stale, "
        f"{row['nodes_offline']} offline, {row['nodes_left']} left",
        f"cpu          {text.pct(row['cpu_percent'])} of {units.count(row['cpu_count'], 'CPU')}",
        f"memory       {text.human_bytes(row['mem_used_bytes'])} of {text.human_bytes(row['mem_total_bytes'])} "
        f"({text.pct(row['mem_used_percent'])})",
        f"gpus         {row['gpu_count']}",
        f"alerts       {row['alerts_firing']} firing, {row['alerts_critical']} critical",
    ]
    if not pd.isna(row["redis_state"]):
        state = str(row["redis_state"])
        if state != "connected":
            state += f" since {text.clock(row['redis_down_since'])}" if not pd.isna(row["redis_down_since"]) else ""
            state += ": showing this process's last view"
        lines.append(f"redis        {state}")
    if row["records_rejected"]:
        rejected = units.count(row["records_rejected"], "record")
        lines.append(f"rejected     {rejected} from Redis: {text.printable(row['rejected'])}")
    return "\n".join(lines)


def _cmd_workers(client: Client, args: argparse.Namespace) -> str:
    df = client.workers()
    if args.json:
        return text.as_json(df)
    columns = {"node": None, **{f.name: text.format_of(f) for f in tables.workers_table(schema.CLI)}}
    return text.table(df, columns)


def _cmd_kernels(client: Client, args: argparse.Namespace) -> str:
    df = client.kernels(node=args.node or None, path=args.path, min_memory=args.min_memory, me=args.me)
    if args.json:
        return text.as_json(df)
    if df.empty:
        return "no kernels: none of the Jupyter servers with the clusternb extension runs one (or they match nothing)"
    columns = {"kernel_id": None, **{f.name: text.format_of(f) for f in tables.kernels_table(schema.CLI)}}
    return text.table(df, columns)


def _cmd_metrics(client: Client, args: argparse.Namespace) -> str:
    fields = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else None
    df = client.metrics(since=args.since, until=args.until, node=args.node or None, fields=fields)
    if args.json:
        return text.as_json(df)
    formats = {name: text.format_of(schema.field("metrics", name)) for name in df.columns}
    return text.table(df.tail(args.tail) if args.tail else df, formats)


def _cmd_alerts(client: Client, args: argparse.Namespace) -> str:
    df = client.alerts(active=not args.all, severity=args.severity, node=args.node)
    return text.as_json(df) if args.json else text.table(df, {c: None for c in df.columns})


def _cmd_config(settings: ClusterNB, args: argparse.Namespace) -> str:
    data = settings.settings()
    if args.json:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    width = max(len(k) for k in data)
    traits = settings.traits(config=True)
    return "\n".join(
        f"{k:<{width}}  {data[k]!r:<28}  CLUSTERNB_{k.upper()}: {traits[k].help.splitlines()[0]}" for k in data
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (the program, the problem, where to read more) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(name: str, lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type`` for an integer option within ``[lo, hi]``."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected {lo} to {hi}, got {value}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


#: Options whose value may start with "-" (a mistyped "-5m"): argparse would take it for an option and
#: answer "expected one argument"; joined to its option, the value reaches the check that explains it.
_VALUE_OPTIONS = ("--since", "--until")


def _join_dash_values(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        if items[i] in _VALUE_OPTIONS and i + 1 < len(items) and items[i + 1].startswith("-"):
            out.append(f"{items[i]}={items[i + 1]}")
            i += 2
            continue
        out.append(items[i])
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clusternb",
        description="Cluster monitoring for Jupyter users: the state of this host, of nodes running "
        "`clusternb agent`, and of Dask schedulers, as tables or JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clusternb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        p.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
        p.add_argument("--redis", metavar="URL", help="Redis URL of the cluster (default: $CLUSTERNB_REDIS_URL)")
        return p

    add("status", "One-line-per-topic cluster summary: health, node counts, CPU and memory use.")
    add("workers", "One row per node: status, age of its last sample, CPU, memory, disk, network, GPUs.")
    p = add("metrics", "Time series of every node (one row per node per sample).")
    p.add_argument("--since", default="15m", help="duration ('15m', '2h') or ISO time; default 15m")
    p.add_argument("--until", default=None, help="duration or ISO time; default now")
    p.add_argument("--node", action="append", help="only this node (repeat for several)")
    p.add_argument("--fields", help=f"comma-separated subset of: {', '.join(vocab.METRIC_NAMES)}")
    p.add_argument("--tail", type=_count("N", 0, 10**9), default=0, help="only the last N rows of the table (0: all)")
    p = add("alerts", "Active alerts (or all recent ones with --all).")
    p.add_argument("--all", action="store_true", help="include resolved alerts")
    p.add_argument("--severity", choices=vocab.SEVERITY_ORDER, help="only this severity")
    p.add_argument("--node", help="only alerts about this node")
    p = add("kernels", "Jupyter kernels of every server with the extension: path, state, CPU, memory (with children).")
    p.add_argument("--node", action="append", help="only kernels on this node (repeat for several)")
    p.add_argument("--path", help="only notebooks whose path matches this pattern ('*' any text)")
    p.add_argument("--min-memory", metavar="SIZE", help="only kernels using at least this much, e.g. 300MB or 1.5GiB")
    p.add_argument("--me", action="store_true", help="only your own kernels (the Unix user running this)")
    add("config", "Every setting with its current value and environment variable.")
    _add_service_parsers(sub)
    return parser


AGENT_HELP = """\
Run on every node of the cluster: samples this host every --interval seconds and publishes each snapshot
to Redis, where `clusternb workers --redis URL`, kernels and the Jupyter extension read it. Keeps running
(and sampling) while Redis is unreachable, retrying with backoff; SIGTERM or Ctrl-C records a clean
departure and exits 0.

example: clusternb agent --redis redis://head:6379/0 --label rack=a --label role=gpu
"""

DEMO_HELP = """\
A cluster on this host to try clusternb: starts a private redis-server on a free port and N agents
(demo-1 .. demo-N), prints the URL to use, and stops everything on Ctrl-C.
"""


#: More agents than this on one host measure the host's scheduler, not clusternb.
DEMO_AGENTS_MAX = 64


def _add_service_parsers(sub: Any) -> None:
    """The long-running commands: they take no --json and do not build a query client."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("agent", help="Publish this node's samples to the cluster's Redis (run on every node).",
                       description=AGENT_HELP, epilog=EPILOG, formatter_class=fmt)  # fmt: skip
    p.add_argument("--redis", metavar="URL", help="Redis URL to publish to (default: $CLUSTERNB_REDIS_URL)")
    p.add_argument("--name", help="node name, unique in the cluster (default: $CLUSTERNB_NODE_NAME or host name)")
    p.add_argument("--interval", metavar="S", help="seconds between samples (default: $CLUSTERNB_INTERVAL or 2)")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="label every snapshot (repeatable)")
    p.add_argument("--disk-path", metavar="PATH", help="filesystem whose size and use are reported (default: /)")
    p = sub.add_parser("demo", help="Start a local redis-server and N agents to try cluster mode on one host.",
                       description=DEMO_HELP, epilog=EPILOG, formatter_class=fmt)  # fmt: skip
    p.add_argument("--agents", metavar="N", default=3, type=_count("N", 1, DEMO_AGENTS_MAX),
                   help=f"number of agents, 1 to {DEMO_AGENTS_MAX} (default: 3)")  # fmt: skip
    p.add_argument("--interval", metavar="S", default="1", help="seconds between samples of each agent (default: 1)")
    p.add_argument("--port", metavar="PORT", type=_count("PORT", 1, 65535),
                   help="port of the redis-server, 1 to 65535 (default: a free one)")  # fmt: skip


def _number(args: argparse.Namespace, name: str, kind: type[float] | type[int]) -> Any:
    raw = getattr(args, name)
    try:
        return kind(raw)
    except ValueError:
        raise arguments.ArgumentError(f"--{name}", f"expected a number, got {raw!r}") from None


def _service_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given as agent options; a malformed one raises ValueError (one line, exit 2)."""
    if args.command != "agent":
        return {}
    out: dict[str, Any] = {}
    if args.name:
        out["node_name"] = args.name
    if args.interval is not None:
        out["interval"] = _number(args, "interval", float)
    if args.disk_path:
        out["disk_path"] = args.disk_path
    if args.label:
        labels = {}
        for item in args.label:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise arguments.ArgumentError("--label", f"expected KEY=VALUE, got {item!r}")
            labels[key.strip()] = value.strip()
        out["labels"] = labels
    return out


def _cmd_agent(settings: ClusterNB, args: argparse.Namespace) -> int:
    import logging

    from clusternb.agent import run_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s clusternb agent %(levelname)s: %(message)s")
    return run_agent(settings)


def _cmd_demo(settings: ClusterNB, args: argparse.Namespace) -> int:
    from clusternb.demo import run_demo

    interval = arguments.number("--interval", _number(args, "interval", float), 0.2, 3600)
    return run_demo(args.agents, interval, args.port)


SERVICES: dict[str, Callable[[ClusterNB, argparse.Namespace], int]] = {"agent": _cmd_agent, "demo": _cmd_demo}


def _notes(client: Client, args: argparse.Namespace) -> list[str]:
    """What the table cannot say by itself about why it is short: one line each, on stderr."""
    notes = []
    if args.command in ("workers", "status") and client.workers().empty:
        hint = client.empty_hint()
        if hint is not None:
            notes.append(hint)
    if args.command == "metrics" and client.link is None:
        notes.append(
            "no Redis configured, so this is the history of this short-lived process: this host's samples since "
            "it started. For the cluster's history run `clusternb agent` on each node and use --redis URL "
            "(or $CLUSTERNB_REDIS_URL); a kernel or the Jupyter server keeps its own."
        )
    return notes


#: Exit status of a query command that answered without the configured Redis (down, unreachable, wrong
#: password): the output is this process's own view, which a script must not take for the cluster's.
EXIT_REDIS_UNREACHABLE = 3

COMMANDS: dict[str, Callable[[Client, argparse.Namespace], str]] = {
    "status": _cmd_status,
    "workers": _cmd_workers,
    "metrics": _cmd_metrics,
    "alerts": _cmd_alerts,
    "kernels": _cmd_kernels,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_join_dash_values(sys.argv[1:] if argv is None else argv))
    overrides = {"redis_url": args.redis} if getattr(args, "redis", None) else {}
    try:
        overrides.update(_service_overrides(args))
        settings = load_config(**overrides)
        if args.command == "config":
            print(_cmd_config(settings, args))
            return 0
        if args.command in SERVICES:
            return SERVICES[args.command](settings, args)
        from clusternb.queries import Client, NoNodesWarning  # pandas and friends: only for the query commands

        # An outage is reported once, below, in the command's own words: not also by the link's log line.
        logging.getLogger("clusternb.redis").setLevel(logging.ERROR)

        with Client(settings) as client, warnings.catch_warnings():
            warnings.simplefilter("ignore", NoNodesWarning)  # said below, as a note in the CLI's own words
            print(COMMANDS[args.command](client, args))
            for note in _notes(client, args):
                print(f"clusternb {args.command}: note: {note}", file=sys.stderr)
            shared = client.shared_state()
        if shared.redis_state not in (None, "connected"):
            print(
                f"clusternb {args.command}: redis {shared.redis_state} ({text.printable(shared.error)}); the answer "
                "above is this process's own view, not the cluster's",
                file=sys.stderr,
            )
            return EXIT_REDIS_UNREACHABLE
    except arguments.BadInput as exc:  # the user's own input, and only that: a data fault is an internal error
        print(f"clusternb {args.command}: error: {text.printable(exc)}", file=sys.stderr)
        return 2
    except RedisFault as exc:
        print(f"clusternb {args.command}: error: {exc.reason}", file=sys.stderr)
        return EXIT_REDIS_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback only when asked for
        if os.environ.get("CLUSTERNB_DEBUG"):
            raise
        print(
            f"clusternb {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set CLUSTERNB_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
