"""The table of ``benchmarks/gpu.sh``: its rows' JSON lines as one markdown table + JSON.

    python benchmarks/gpu_table.py RESULTS_DIR

reads ``RESULTS_DIR/logs/row_<name>.jsonl`` (what ``vs_trl.py`` printed: one report
per side and mode, then the ratios ours / TRL) and ``logs/cuda_tests.txt``, and
writes ``RESULTS_DIR/gpu.md`` and ``gpu.json``. A row that failed or ran over its
time limit is listed with the end of its error output, never left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROWS = {
    "4x1024": "4 pairs × 1024, no AC",
    "8x1024": "8 pairs × 1024, no AC",
    "8x2048_ac": "8 pairs × 2048, activation checkpointing",
    "chat": "chat lengths (TRL padded, ours packed)",
    "cached_reference": "chat lengths, cached reference (ours)",
}

TARGETS = {
    "4x1024": "≥ 1.2× TRL tokens/s, ≤ 0.9× TRL peak",
    "8x2048_ac": "fits, beats TRL",
    "chat": "own ≥ 1.8× TRL tokens/s",
}


def read_row(logs: Path, name: str) -> dict[str, Any]:
    """The reports and ratios of one row, or why there are none."""
    out = logs / f"row_{name}.jsonl"
    lines = out.read_text().splitlines() if out.is_file() else []
    reports = [json.loads(line) for line in lines if line.startswith("{")]
    row: dict[str, Any] = {
        "row": name,
        "sides": [r for r in reports if "side" in r],
        "ratios": [r for r in reports if "ratio" in r],
    }
    if not row["sides"]:
        err = logs / f"row_{name}.err"
        tail = err.read_text().strip().splitlines()[-3:] if err.is_file() else ["not run"]
        row["error"] = " / ".join(tail)
    return row


def cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def label(report: dict[str, Any]) -> str:
    if report["side"] == "trl":
        return "TRL 1.16"
    reference = " cached ref" if report.get("reference") == "cached" else ""
    return f"ours {report['mode']}{reference}"


def markdown(rows: list[dict[str, Any]], gpu: str, tests: str) -> str:
    lines = [
        f"GPU: {gpu}. CUDA tests: {tests}.",
        "",
        "| row | side | ms/step | real tokens/s | padding eff. | peak GiB | MFU | "
        "step-1 loss − ln 2 | tokens/s ÷ TRL | peak ÷ TRL | loss agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        title = ROWS[row["row"]]
        if "error" in row:
            lines.append(f"| {title} | failed: {row['error'][:160]} |" + " |" * 9)
            continue
        ratios = {r["ratio"]: r for r in row["ratios"]}
        for report in row["sides"]:
            ratio = ratios.get(f"ours ({report['mode']}) / trl", {})
            if report["side"] == "trl" or report.get("reference") == "cached":
                ratio = {}
            mfu = report.get("mfu")
            agreement = ratio.get("loss_max_abs_diff")
            cells = [
                title,
                label(report),
                cell(report["ms_per_step"]),
                cell(report["real_tokens_per_s"], 0),
                cell(report["padding_efficiency"], 3),
                cell(report.get("peak_memory_gib"), 2),
                "—" if mfu is None else f"{100 * mfu:.1f}%",
                f"{report['loss_step1_minus_ln2']:.1e}",
                cell(ratio.get("real_tokens_per_s"), 2),
                cell(ratio.get("peak_memory_gib"), 2),
                "—" if agreement is None else f"{agreement:.1e}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    targets = [f"{ROWS[k]}: {v}" for k, v in TARGETS.items()]
    lines += ["", "Targets: " + "; ".join([*targets, "MFU ≥ 40%"]) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    results = Path(sys.argv[1])
    logs = results / "logs"
    names = [n for n in ROWS if (logs / f"row_{n}.jsonl").exists()]
    rows = [read_row(logs, name) for name in names]
    gpu_file, tests_file = logs / "gpu_name.txt", logs / "cuda_tests.txt"
    gpu = gpu_file.read_text().strip() if gpu_file.is_file() else "unknown"
    tests = "not run"
    if tests_file.is_file():
        summary = [ln for ln in tests_file.read_text().splitlines() if " in " in ln]
        tests = summary[-1].strip("= ") if summary else "see logs/cuda_tests.txt"
    (results / "gpu.json").write_text(json.dumps({"gpu": gpu, "tests": tests, "rows": rows}))
    (results / "gpu.md").write_text(markdown(rows, gpu, tests))
    print((results / "gpu.md").read_text())


if __name__ == "__main__":
    main()
