"""End-of-run summary, curves.png, and ``fairseq2 lm plot_runs``."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fairseq2_preference.cli import main
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.run.curves import plot_runs
from fairseq2_preference.run.report import report_after_training, summary

from helpers import regime, train, write_jsonl

LOSSES = [0.70, 0.50, 0.60, 0.40, 0.45]
ACCURACIES = [0.0, 0.5, 0.75, 1.0, 0.9]
MARGINS = [0.0, 0.2, 0.1, 0.8, 0.6]


def fake_run(run_dir: Path, rewards: bool = True) -> Path:
    """A run directory laid out as fairseq2 writes it."""
    rows = []
    for step, (loss, acc, margin) in enumerate(zip(LOSSES, ACCURACIES, MARGINS, strict=True), 1):
        row: dict[str, object] = {"Step": step, "Loss": loss}
        if rewards:
            row |= {"Rewards/Accuracies": acc, "Rewards/Margins": margin}
        rows.append(row)
    write_jsonl(run_dir / "metrics" / "train.jsonl", rows)
    write_jsonl(run_dir / "metrics" / "valid.jsonl", [{**rows[1], "Loss": 0.3}, rows[3]])
    for step in (2, 10):
        (run_dir / "checkpoints" / f"step_{step}").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("tokenizer:\n  name: my_tok\n")
    return run_dir


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_summary_gives_final_and_best_values_and_the_last_checkpoint(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run")
    lines = summary(run).splitlines()

    def row(name: str) -> list[str]:
        return next(ln for ln in lines if ln.strip().startswith(name)).split()[-3:]

    # final, best, (step of best): loss is best when lowest, the others when highest.
    assert row("train loss") == ["0.4500", "0.4000", "(4)"]
    assert row("train reward accuracy") == ["0.9000", "1.0000", "(4)"]
    assert row("train reward margin") == ["0.6000", "0.8000", "(4)"]
    assert row("held-out loss") == ["0.4000", "0.3000", "(2)"]
    assert f"Last checkpoint: {run / 'checkpoints' / 'step_10'}" in lines
    assert any(f"fairseq2 lm export_hf {run}" in ln for ln in lines)
    assert any("model.name=last_checkpoint tokenizer.name=my_tok" in ln for ln in lines)


def test_one_panel_per_logged_metric(tmp_path: Path) -> None:
    dpo = plot_runs([fake_run(tmp_path / "dpo")], tmp_path / "dpo.png")
    sft = plot_runs([fake_run(tmp_path / "sft", rewards=False)], tmp_path / "sft.png")
    (dpo_width, height), (sft_width, sft_height) = png_size(dpo), png_size(sft)
    assert dpo_width == 3 * sft_width and height == sft_height


def test_plot_runs_command_draws_several_runs(tmp_path: Path) -> None:
    runs = [str(fake_run(tmp_path / f"beta_{b}")) for b in ("0.1", "0.5")]
    out = tmp_path / "sweep.png"
    main(["lm", "plot_runs", *runs, "--output", str(out), "--labels", "β=0.1", "β=0.5"])
    assert png_size(out)[0] > 0
    with pytest.raises(PreferenceConfigError, match="1 label"):
        plot_runs([Path(r) for r in runs], out, ["only one"])


def test_a_failed_plot_still_leaves_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fairseq2_preference.run.report

    def no_matplotlib(*args: object) -> None:
        raise ModuleNotFoundError("No module named 'matplotlib'")

    monkeypatch.setattr(fairseq2_preference.run.report, "plot_runs", no_matplotlib)
    sweep = tmp_path / "out"
    run = fake_run(sweep / "ws_1.abc")  # a fairseq2 sweep sub-directory
    report_after_training(sweep)
    captured = capsys.readouterr()
    assert "No curves drawn: No module named 'matplotlib'" in captured.err
    assert (run / "summary.txt").read_text().strip() in captured.out
    assert not (run / "curves.png").exists()


@pytest.mark.slow
def test_a_training_run_ends_with_a_summary_and_curves(
    tmp_path: Path, tiny_assets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    train(out, tiny_assets, *regime(4, 2))
    printed = capsys.readouterr().out
    assert "held-out reward accuracy" in printed
    assert f"Last checkpoint: {out / 'checkpoints' / 'step_4'}" in printed
    assert (out / "summary.txt").read_text().strip() in printed
    assert png_size(out / "curves.png")[0] > 0
