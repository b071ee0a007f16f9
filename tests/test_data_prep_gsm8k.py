"""GSM8K negatives: answer parsing, the mining rules, and a real mining run."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from fairseq2_preference.data_prep.formatting import Llama3Formatter
from fairseq2_preference.data_prep.gsm8k import (
    clean_solution,
    final_number,
    mine,
    prompt_turns,
)

from helpers import REPO, read_jsonl_dir, run_cli, train, write_jsonl


def test_final_number() -> None:
    assert final_number("so 3 + 4 = 7\n#### 7") == 7.0
    assert final_number("#### 1,250") == 1250.0
    assert final_number("#### -3.5\n") == -3.5
    assert final_number("the answer is 7") is None
    assert final_number("#### 7 apples") is None  # the number must end the answer
    assert clean_solution("48/2 = <<48/2=24>>24 clips.\n#### 24") == "48/2 = 24 clips.\n#### 24"


def test_mining_rules() -> None:
    problem = {"question": "What is 3 plus 4?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"}
    samples = [
        "3 + 4 = 8\n#### 8",  # well formatted, wrong: kept
        "3 + 4 = 7\n#### 7.0",  # correct: dropped
        "it is nine",  # not well formatted: dropped
        "3 + 4 = 8\n#### 8",  # repeated: dropped
        "3 + 4 = 1\n#### 1",  # kept
        "3 + 4 = 2\n#### 2",  # over max_rejected: dropped
    ]
    drops: Counter[str] = Counter()
    pairs, sft = mine([problem], [samples], max_rejected=2, drops=drops)
    assert [p.rejected for p in pairs] == ["3 + 4 = 8\n#### 8", "3 + 4 = 1\n#### 1"]
    assert all(p.chosen == "3 + 4 = 7\n#### 7" for p in pairs)
    assert [s.chosen for s in sft] == ["3 + 4 = 7\n#### 7"]
    assert drops == Counter(
        {
            "samples: correct": 1,
            "samples: not well formatted (no final '#### <number>')": 1,
            "samples: repeated": 1,
            "samples: over --max_rejected": 1,
        }
    )


def gsm8k_file(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append(
            {
                "question": f"What is {a} plus {b}?",
                "answer": f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}",
            }
        )
    return write_jsonl(path, rows)


@pytest.mark.slow
def test_mining_with_a_tiny_sft_model(tmp_path: Path, tiny_assets: Path) -> None:
    problems = gsm8k_file(tmp_path / "gsm8k.jsonl", 48)
    # SFT the tiny model on the format, with the prompts the miner will use.
    formatter = Llama3Formatter()
    sft_rows = []
    for i, line in enumerate(problems.read_text().splitlines()):
        row = json.loads(line)
        sft_rows.append({"id": str(i), "src": formatter(prompt_turns(row["question"])),
                         "tgt": clean_solution(row["answer"])})  # fmt: skip
    sft_data = write_jsonl(tmp_path / "sft" / "data.jsonl", sft_rows)  # type: ignore[arg-type]
    run = tmp_path / "run"
    train(
        run, tiny_assets, "dataset.name=null", "dataset.family=generic_instruction",
        f"dataset.config_overrides.path={sft_data}", "dataset.max_seq_len=256",
        "dataset.max_num_tokens=4096", "regime.num_steps=60", "regime.validate_every_n_steps=60",
        "regime.checkpoint_every_n_steps=60", "optimizer.config.lr=3e-3", sft=True,
    )  # fmt: skip

    result = run_cli(
        [sys.executable, str(REPO / "datasets" / "gsm8k_negatives_data_prep.py"),
         "--model", "checkpoint_step_60", "--tokenizer", "tiny_llama",
         "--asset_path", str(tiny_assets / "cards"), "--checkpoint_dir", str(run / "checkpoints"),
         "--source", str(problems), "--num_samples", "6", "--max_gen_len", "24",
         "--temperature", "1.0", "--data_dir", str(tmp_path / "data"),
         "--card_dir", str(tmp_path / "cards"), "--dev_size", "4"],
        env={"FAIRSEQ2_DEVICE": "cpu"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    pairs = read_jsonl_dir(tmp_path / "data" / "preference")
    assert len(pairs) > 0, result.stdout
    rows = [json.loads(line) for line in problems.read_text().splitlines()]
    gold = {formatter(prompt_turns(r["question"])): clean_solution(r["answer"]) for r in rows}
    for pair in pairs:
        assert pair["tgt_chosen"] == gold[pair["src"]]
        wrong = final_number(pair["tgt_rejected"])
        assert wrong is not None and wrong != final_number(pair["tgt_chosen"])
    assert "gsm8k_llama3_preference_train" in (tmp_path / "cards" / "gsm8k_llama3.yaml").read_text()
