"""AlpacaEval 2: metrics against alpaca_eval's own, and the whole path offline."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from fairseq2_preference.evaluation import judge as judge_module
from fairseq2_preference.evaluation.judge import summarize

from fake_judge import expected_win_rate, fake_judge
from helpers import FAIRSEQ2, REPO, run_cli, train

ANNOTATIONS = REPO / "tests" / "data" / "alpaca_annotations.json"


def test_win_rate_of_fixed_annotations_matches_alpaca_eval() -> None:
    from alpaca_eval.metrics import get_winrate

    annotations = pd.read_json(ANNOTATIONS)
    result = summarize(annotations)
    assert result.win_rate == pytest.approx(get_winrate(annotations)["win_rate"])
    # Independently: mean preference for the model (2) over the reference (1), 0 = draw.
    rows = json.loads(ANNOTATIONS.read_text())
    prefs = [1.5 if r["preference"] == 0 else r["preference"] for r in rows]
    assert result.win_rate == pytest.approx(100 * sum(p - 1 for p in prefs) / len(prefs))
    assert result.n_total == 12
    assert result.avg_length == int(annotations["output_2"].str.len().mean())
    assert result.length_controlled_winrate is None and "805" in result.notes[0]


def full_set_annotations(seed: int = 0) -> pd.DataFrame:
    rng = pd.Series(range(805)).sample(frac=1, random_state=seed).tolist()
    lengths_1 = [50 + (i * 37) % 900 for i in rng]
    lengths_2 = [80 + (i * 53) % 1200 for i in rng]
    return pd.DataFrame(
        {
            "instruction": [f"q{i}" for i in range(805)],
            "output_1": ["r" * n for n in lengths_1],
            "output_2": ["m" * n for n in lengths_2],
            "generator_1": "gpt4_1106_preview",
            "generator_2": "mine",
            "annotator": "weighted_alpaca_eval_gpt4_turbo",
            # the model wins mostly when it is longer: a length-biased judge
            "preference": [
                2.0 if b > a else 1.0 for a, b in zip(lengths_1, lengths_2, strict=True)
            ],
        }
    )


def stand_in_df_gamed(path: Path) -> Path:
    """df_gamed.csv's columns, for two 'gamed' baselines; real LC values need the real file."""
    rows = []
    for model, sign in (("verbose", 1.0), ("concise", -1.0)):
        for i in range(805):
            rows.append({"model": model, "index": i, "preference": 0.5 + 0.3 * sign,
                         "std_delta_len": -sign, "instruction_difficulty": ((i % 7) - 3) / 3,
                         "not_gamed_baseline": False})  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_length_controlled_win_rate_on_the_full_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alpaca_eval.metrics.glm_winrate as glm

    df_gamed = stand_in_df_gamed(tmp_path / "df_gamed.csv")
    monkeypatch.setattr(glm, "hf_hub_download", lambda **kwargs: str(df_gamed))
    monkeypatch.setattr(judge_module, "hub_file", lambda filename: df_gamed)
    annotations = full_set_annotations()
    result = summarize(annotations)
    expected = glm.get_length_controlled_winrate(annotations.copy(), save_weights_dir=None)
    assert result.length_controlled_winrate == pytest.approx(expected["length_controlled_winrate"])
    # The judge favours length, so controlling for length lowers the win rate.
    assert result.length_controlled_winrate < result.win_rate

    def offline(filename: str) -> Path:
        raise OSError("no network")

    monkeypatch.setattr(judge_module, "hub_file", offline)
    result = summarize(annotations)
    assert result.length_controlled_winrate is None and "df_gamed.csv" in result.notes[0]


def seed_hub_cache(home: Path, files: dict[str, object]) -> dict[str, str]:
    """A Hugging Face cache holding files of the tatsu-lab/alpaca_eval dataset repo."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = home / "hub" / "datasets--tatsu-lab--alpaca_eval"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    (repo / "snapshots" / sha).mkdir(parents=True)
    for name, content in files.items():
        (repo / "snapshots" / sha / name).write_text(json.dumps(content))
    return {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def package_files() -> dict[str, float]:
    import alpaca_eval

    root = Path(alpaca_eval.__file__).parent
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if "__pycache__" not in p.parts}


INSTRUCTIONS = [
    {"instruction": "Describe the red cat.", "dataset": "helpful_base"},
    {"instruction": "What is the capital of France?", "dataset": "oasst"},
    {"instruction": "Write a haiku about rain.", "dataset": "koala"},
    {"instruction": "Describe the blue owl.", "dataset": "vicuna"},
]
REFERENCES = [
    {**ex, "output": "x" if i % 2 else "y" * 3000, "generator": "gpt4_1106_preview"}
    for i, ex in enumerate(INSTRUCTIONS)
]


@pytest.mark.slow
def test_one_command_from_a_run_checkpoint_to_a_results_row(
    tmp_path: Path, tiny_assets: Path
) -> None:
    run = tmp_path / "dpo_run"
    train(run, tiny_assets, "regime.num_steps=4", "regime.validate_every_n_steps=2",
          "regime.checkpoint_every_n_steps=2")  # fmt: skip
    env = {
        **seed_hub_cache(tmp_path / "hf", {"alpaca_eval.json": INSTRUCTIONS,
                                          "alpaca_eval_gpt4_baseline.json": REFERENCES}),
        "OPENAI_API_KEY": "", "FAIRSEQ2_DEVICE": "cpu",
    }  # fmt: skip
    out, table = tmp_path / "eval", tmp_path / "results"
    before = package_files()
    with fake_judge() as url:
        result = run_cli(
            [str(FAIRSEQ2), "lm", "alpaca_eval", str(out), "--no-rich", "--config",
             "model.name=last_checkpoint", "model.dtype=float32", "tokenizer.name=tiny_llama",
             f"common.assets.prev_checkpoint_dir={run / 'checkpoints'}",
             f"common.assets.extra_paths=[{tiny_assets / 'cards'}]",
             "seq_generator.config.max_gen_len=24", f"judge.base_url={url}",
             f"judge.results_table={table}", "judge.epoch=1"],
            env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]

        outputs = json.loads((out / "model_outputs.json").read_text())
        assert [o["instruction"] for o in outputs] == [i["instruction"] for i in INSTRUCTIONS]
        assert {o["generator"] for o in outputs} == {"dpo_run_last_checkpoint"}
        assert [o["dataset"] for o in outputs] == [i["dataset"] for i in INSTRUCTIONS]
        expected = expected_win_rate(
            [o["output"] for o in outputs], [r["output"] for r in REFERENCES]
        )
        rows = pd.read_csv(table.with_suffix(".csv"), keep_default_na=False)
        assert rows["WR"].tolist() == [pytest.approx(expected, abs=1e-3)]
        assert rows["LC WR"].tolist() == ["n/a"]
        assert rows["Loss Function"].tolist() == ["DPO"]
        assert rows["Training Config"].tolist() == [str(run / "config.yaml")]
        assert rows["Model Initialization"].tolist() == ["tiny_llama"]
        assert (
            f"| n/a | {expected:.3f} | DPO | [config.yaml]" in table.with_suffix(".md").read_text()
        )
        assert "805-instruction set only" in result.stdout

        # Judge again from the outputs alone: one more row, the same figures.
        again = run_cli(
            [str(FAIRSEQ2), "lm", "judge_alpaca_eval", str(out / "model_outputs.json"),
             "--base_url", url, "--results_table", str(table)],
            env=env,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        rows = pd.read_csv(table.with_suffix(".csv"), keep_default_na=False)
        assert len(rows) == 2 and rows["WR"][1] == pytest.approx(expected, abs=1e-3)
        assert rows["Loss Function"][1] == "DPO"
    assert package_files() == before  # nothing written into the installed alpaca_eval

    no_credentials = run_cli(
        [str(FAIRSEQ2), "lm", "judge_alpaca_eval", str(out / "model_outputs.json")], env=env
    )
    assert no_credentials.returncode == 2 and "OPENAI_API_KEY" in no_credentials.stderr


@pytest.mark.slow
@pytest.mark.distributed
def test_generation_is_data_parallel_under_torchrun(tmp_path: Path, tiny_assets: Path) -> None:
    instructions = tmp_path / "instructions.jsonl"
    lines = [json.dumps({"instruction": f"Describe thing number {i}."}) for i in range(7)]
    instructions.write_text("\n".join(lines) + "\n")
    args = ["lm", "alpaca_eval", "OUT", "--no-rich", "--config", "model.name=tiny_llama",
            "model.dtype=float32", "tokenizer.name=tiny_llama",
            f"common.assets.extra_paths=[{tiny_assets / 'cards'}]", "judge.enabled=false",
            f"alpaca_eval.instructions={instructions}", "seq_generator.config.max_gen_len=12",
            "alpaca_eval.batch_size=2"]  # fmt: skip

    def outputs(out: Path, launcher: list[str]) -> list[dict[str, str]]:
        command = [*launcher, str(FAIRSEQ2), *[str(out) if a == "OUT" else a for a in args]]
        result = run_cli(command, env={"OMP_NUM_THREADS": "1", "FAIRSEQ2_DEVICE": "cpu"})
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((out / "model_outputs.json").read_text())  # type: ignore[no-any-return]

    one = outputs(tmp_path / "one", [])
    two = outputs(tmp_path / "two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                     "--nproc-per-node", "2", "--no-python"])  # fmt: skip
    assert (tmp_path / "two" / "outputs" / "rank_1.jsonl").is_file()
    assert [o["instruction"] for o in two] == [f"Describe thing number {i}." for i in range(7)]
    assert two == one  # greedy decoding: the same answers, in the instructions' order
    assert os.path.getsize(tmp_path / "two" / "outputs" / "rank_0.jsonl") > 0
