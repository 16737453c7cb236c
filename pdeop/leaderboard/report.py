"""The leaderboard report: result records collected into one table per (table, tier), the paper's
figure beside each measured one, as Markdown (``README.md``) and CSV (``results.csv``).

Tiers are never mixed in one table: a CPU-tier figure is a smaller run of the paper's recipe and
is not the paper's result. Every row states the command that regenerates it.

Each record is read against its cell's current definition (``cells``: the metric the paper's
figure is, the metrics shown beside it), so the measured column always holds the paper's kind of
figure: a record made before its cell compared that metric shows "not recorded" there, not a
figure of another kind. A cell that departs from the paper's setting says how beside its command.

The provenance column flags records that a clean rerun should replace: made from a tree with
uncommitted changes (a ``-dirty`` commit, so the commit named is not the code that ran) or by
resuming a shorter run in its folder (``resumed_from_epoch``: the wall time and the process's peak
memory cover the later epochs only).
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from pathlib import Path

from pdeop.errors import ConfigError
from pdeop.io import atomic_path, writable_file
from pdeop.leaderboard.cells import Cell
from pdeop.leaderboard.record import read_json

COLUMNS = ("table", "tier", "model", "metric", "measured", "paper", "ratio", "also", "paper_metric", "departs",
           "parameters", "seconds_per_epoch", "hardware", "date", "git_commit", "provenance", "command")
NOT_RECORDED = "not recorded"


REPORT_TITLE = "# Leaderboard"
RECORD_KEYS = {"table": str, "cell": str, "tier": str, "metric": str}


def load_records(folder: Path) -> list[dict]:
    """Every record under ``folder`` (``<table>/<cell>.<tier>.json``); one that cannot be read, or lacks what the
    report reads, is one error naming it."""
    records = []
    for path in sorted(Path(folder).glob("*/*.json")):
        record = read_json(path, "record")
        wrong = [key for key, kind in RECORD_KEYS.items() if not isinstance(record.get(key), kind)]
        wrong += [key for key in ("measured", "paper") if not isinstance(record.get(key), (int, float, type(None)))]
        if wrong:
            raise ConfigError(f"record '{path}' is not a leaderboard record ({', '.join(wrong)} missing or of another "
                              f"type); make it again with python -m pdeop.leaderboard record <table>")
        records.append(record)
    return records


def is_report(path: Path) -> bool:
    """Whether ``path`` is a README.md or results.csv this report wrote (by its first line)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return False
    return first in (REPORT_TITLE, ",".join(COLUMNS))


def recorded(record: dict) -> dict[str, float]:
    """The record's test metrics under today's names. A rollout's record made before its errors were split
    (``_lead<k>`` keys, no ``test/rel_l2_step_<n>``) holds its per-step mean as ``test/rel_l2_<n>``: pdeop logged
    the relative L2 averaged over the stacked states, which is the per-step mean for one channel and one state a
    model call (the Navier-Stokes cells, the only such records; tests/test_trajectories.py checks the equality)."""
    metrics = dict(record.get("metrics") or {})
    if record.get("measured") is not None:
        metrics.setdefault(record["metric"], record["measured"])
    for name in list(metrics):
        match = re.fullmatch(r"test/rel_l2_(\d+)", name)
        if match and f"{name}_lead1" in metrics and f"test/rel_l2_step_{match[1]}" not in metrics:
            metrics[f"test/rel_l2_step_{match[1]}"] = metrics.pop(name)
    return metrics


def compared(record: dict, cell: Cell | None = None) -> dict:
    """The record as a report row against ``cell``'s current definition (the record's own without one): the metric
    compared with the paper's figure and its value (None where the record lacks it), the metrics shown beside it."""
    metric = cell.metric if cell else record["metric"]
    also = cell.also if cell else tuple(record.get("also") or ())
    metrics = recorded(record)
    return {**record, "metric": metric, "measured": metrics.get(metric),
            "paper": cell.paper_value if cell else record.get("paper"),
            "paper_source": cell.paper_source if cell else record.get("paper_source", ""),
            "paper_metric": cell.paper_metric if cell else record.get("paper_metric", ""),
            "departs": cell.departs if cell else record.get("departs", ""),
            "also": {name: metrics.get(name) for name in also}}


def provenance(record: dict) -> str:
    """Why a clean rerun should replace the record: uncommitted changes, a shorter run resumed, or options given
    beyond the cell's command; empty if none."""
    notes = []
    if str(record.get("git_commit", "")).endswith("-dirty"):
        notes.append("uncommitted changes")
    if record.get("options"):
        notes.append(f"run with {' '.join(record['options'])} beyond its command")
    if record.get("resumed_from_epoch"):
        notes.append(f"resumed after epoch {record['resumed_from_epoch']}")
    return "; ".join(notes)


def also_text(row: dict) -> str:
    """The metrics shown beside the compared one: ``name`` value, or not recorded."""
    return "; ".join(f"`{name}` {figure(value) if value is not None else NOT_RECORDED}"
                     for name, value in row["also"].items()) or "--"


def ratio(record: dict) -> float | None:
    """Measured over paper (above 1: worse than published, for an error)."""
    if record.get("measured") is None or not record.get("paper"):
        return None
    return record["measured"] / record["paper"]


def figure(value, digits: int = 4) -> str:
    return "--" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def rows_of(records: list[dict], cells: dict[str, Cell] | None) -> list[dict]:
    """Report rows: each record against its cell (by experiment name) where ``cells`` has it."""
    return [compared(record, (cells or {}).get(record.get("experiment", ""))) for record in records]


def table_row(r: dict) -> str:
    """One Markdown table row: the figures, where and when they were measured, and the record's provenance."""
    measured = NOT_RECORDED if r["measured"] is None else figure(r["measured"])
    return (f"| {r['model']} | `{r['metric']}` | {measured} | {figure(r.get('paper'))} "
            f"| {figure(ratio(r), 3)} | {also_text(r)} | {figure(r.get('parameters'))} "
            f"| {figure(r.get('seconds_per_epoch'), 3)} "
            f"| {r.get('hardware', '--')} | {r.get('date', '--')} | {str(r.get('git_commit', '--'))[:10]} "
            f"| {provenance(r) or '--'} |")


def source_line(r: dict) -> str:
    """The row's command, the paper's source and what its figure measures, how the cell departs, how it is scaled."""
    kind = f" ({r['paper_metric']})" if r.get("paper_metric") else ""
    departs = f"; not the paper's setting: {r['departs']}" if r.get("departs") else ""
    note = f"; scaled: {r['scaled']}" if r.get("scaled") else ""
    return (f"- {r['model']}: `{r['command']}`; paper: {r.get('paper_source') or 'no published figure'}"
            f"{kind}{departs}{note}")


def markdown(records: list[dict], findings: dict[str, str] | None = None, cells: dict[str, Cell] | None = None) -> str:
    """The report; ``findings`` (per table) are what was investigated about its figures, printed under it."""
    groups = defaultdict(list)
    for record in rows_of(records, cells):
        groups[record["table"], record["tier"]].append(record)
    lines = [REPORT_TITLE, "",
             "Generated by `python -m pdeop.leaderboard report` from the records in `records/`; do not edit.",
             "Tier `paper` is each paper's exact setting, except where a row says \"not the paper's setting\" and",
             "how; tier `cpu` the same recipe scaled to a 2-core CPU (how, in the notes), so its figures are not",
             "comparable with the papers' one for one. A provenance entry marks a record to be replaced by a",
             "clean rerun of its command.", ""]
    findings = findings or {}
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] != "paper"))
    for index, ((table, tier), rows) in enumerate(ordered):
        lines += [f"## {table}, tier {tier}", "",
                  "| model | metric | measured | paper | measured / paper | also measured | parameters | s / epoch "
                  "| hardware | date | commit | provenance |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        rows = sorted(rows, key=lambda r: r["model"])
        lines += [*map(table_row, rows), "", "Commands and sources:", "", *map(source_line, rows)]
        if any(r["measured"] is None for r in rows):
            lines += ["", f"\"{NOT_RECORDED}\": the record predates the metric compared with the paper's figure (its "
                      "run logged other metrics, shown under \"also measured\"); rerun the cell to measure it."]
        if any(provenance(r) for r in rows):
            lines += ["", ("Provenance: a record made from a tree with uncommitted changes, or by resuming a shorter "
                           "run in its folder, is to be replaced by a clean run of its command from scratch (a new run "
                           "folder, a clean commit).")]
        lines.append("")
        last_of_table = index == len(ordered) - 1 or ordered[index + 1][0][0] != table
        if last_of_table and table in findings:
            lines += [f"### {table}: findings", "", findings[table].strip(), ""]
    return "\n".join(lines)


def csv_text(records: list[dict], cells: dict[str, Cell] | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows_of(records, cells), key=lambda r: (r["table"], r["tier"], r["model"])):
        also = "; ".join(f"{name}={'' if value is None else value}" for name, value in row["also"].items())
        writer.writerow({**row, "ratio": ratio(row), "also": also, "provenance": provenance(row)})
    return out.getvalue()


def load_findings(folder: Path) -> dict[str, str]:
    """``<folder>/<table>.md``: what was investigated about a table's figures (hand-written)."""
    return {p.stem: p.read_text() for p in sorted(Path(folder).glob("*.md"))} if Path(folder).is_dir() else {}


def write_report(records_folder: Path, out_folder: Path, cells: dict[str, Cell] | None = None) -> tuple[Path, Path]:
    """``README.md`` and ``results.csv`` in ``out_folder`` from every record under ``records_folder``, read against
    ``cells`` (by experiment name), with the findings in ``<out_folder>/findings/<table>.md``."""
    records = load_records(records_folder)
    findings = load_findings(Path(out_folder) / "findings")
    out_folder = Path(out_folder)
    paths = tuple(writable_file(out_folder / name, "--out", is_report, "leaderboard report")
                  for name in ("README.md", "results.csv"))
    for path, text in zip(paths, (markdown(records, findings, cells), csv_text(records, cells))):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return paths
