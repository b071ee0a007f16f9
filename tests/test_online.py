"""Online, iterative DPO: the judges, the pairs, bad input, and rounds run for real —
three from the SFT model in one process (interrupted and resumed), one under torchrun."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError
from fairseq2_preference.online.config import load_config
from fairseq2_preference.online.judges import JudgeConfig
from fairseq2_preference.online.judging import check_judge, create_judge
from fairseq2_preference.online.pairs import best_vs_worst
from fairseq2_preference.online.prompts import load_prompts
from fairseq2_preference.online.rounds import Iteration, StageFailed, subprocess_runner

from fake_judge import expected_rating, fake_judge
from helpers import REPO, run_in_process

ONLINE_CONFIG = REPO / "example_configurations" / "tiny_online_dpo_cpu.yaml"


def test_best_vs_worst_pairs_by_hand() -> None:
    samples = [
        {"id": "a", "src": "p", "completions": ["x", "y", "x", "", "z", "w"]},
        {"id": "b", "src": "q", "completions": ["u", "v"]},
        {"id": "c", "src": "r", "completions": ["s", "t", "s2", "t2"]},
    ]
    scores = [[0.5, 0.9, 0.1, 0.0, math.nan, 0.2], [1.0, 1.0], [1.0, 0.0, 1.0, 0.0]]
    drops: Counter[str] = Counter()
    pairs = best_vs_worst(samples, scores, drops, per_prompt=2)
    got = [(p["id"], p["tgt_chosen"], p["tgt_rejected"], p["chosen_score"]) for p in pairs]
    # a: distinct scored y .9, x .5, w .2 -> y vs w; a second pair would reuse x with itself.
    # c: best s, s2 (sample order), worst t2 then t (the latest of the worst first).
    assert got == [("a", "y", "w", 0.9), ("c", "s", "t2", 1.0), ("c#1", "s2", "t", 1.0)]
    assert drops == {
        "completions: repeated": 1,
        "completions: empty": 1,
        "completions: the judge gave no score": 1,
        "prompts: every completion scored the same": 1,
    }


def test_rule_judges() -> None:
    contains = create_judge(JudgeConfig(name="contains"))
    rows = [
        {"id": 1, "src": "s", "expected": "Red Fox"},
        {"id": 2, "src": "s", "expected": ["a", "b"]},
    ]
    assert contains.score(rows, [["the red fox.", "a fox"], ["b!", "c"]]) == [[1, 0], [1, 0]]

    gsm8k = create_judge(JudgeConfig(name="gsm8k"))
    rows = [
        {"id": 1, "src": "s", "answer": "3 + 4 = 7\n#### 7"},
        {"id": 2, "src": "s", "answer": 1200},
    ]
    completions = [["so #### 7", "#### 8", "7"], ["#### 1,200", "#### 1200.0"]]
    assert gsm8k.score(rows, completions) == [[1, 0, 0], [1, 1]]

    with pytest.raises(PreferenceDataError, match=r"Prompt 'q7'.*'answer' field"):
        gsm8k.score([{"id": "q7", "src": "s"}], [["#### 1"]])
    with pytest.raises(PreferenceConfigError, match="Unknown judge 'llm'"):
        create_judge(JudgeConfig(name="llm"))
    with pytest.raises(PreferenceConfigError, match=r"judge\.path=None is not a Hugging Face"):
        check_judge(JudgeConfig(name="reward_model"))


def test_reward_model_scores_each_sequence_as_it_would_alone(
    tiny_assets: Path, tmp_path: Path
) -> None:
    """Batched, right-padded scoring of uneven sequences equals one unpadded forward
    per sequence, the last real token pooled (transformers, independently)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_assets / "tokenizer"))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_labels=1,
        pad_token_id=tokenizer.convert_tokens_to_ids("<|finetune_right_pad_id|>"),
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config)
    rm_dir = tmp_path / "rm"
    model.save_pretrained(str(rm_dir))
    tokenizer.save_pretrained(str(rm_dir))

    judge = create_judge(JudgeConfig(name="reward_model", path=str(rm_dir), batch_size=3))
    rows = [{"id": i, "src": f"User: question {'x ' * i}\nAssistant:"} for i in range(3)]
    completions = [["a", " a much longer answer with many words"], ["b"], ["c c c", "", "d"]]
    scores = judge.score(rows, completions)

    model.eval()
    for row, texts, got in zip(rows, completions, scores, strict=True):
        for text, score in zip(texts, got, strict=True):
            ids = tokenizer(row["src"] + text, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                hidden = model.model(input_ids=ids).last_hidden_state
                alone = float(model.score(hidden)[0, -1, 0])
            assert score == pytest.approx(alone, abs=1e-5)
    assert len({s for group in scores for s in group}) == 6  # the texts matter

    with pytest.raises(PreferenceConfigError, match="not a Hugging Face model directory"):
        create_judge(JudgeConfig(name="reward_model", path=str(tmp_path)))
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(PreferenceConfigError, match="untrained reward head"):
        create_judge(JudgeConfig(name="reward_model", path=str(tmp_path)))
    with pytest.raises(PreferenceConfigError, match="batch_size"):
        create_judge(JudgeConfig(name="contains", batch_size=0))


def test_openai_judge_reads_ratings_from_a_compatible_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(PreferenceConfigError, match=r"\$OPENAI_API_KEY"):
        create_judge(JudgeConfig(name="openai"))
    completions = [["one two three", "a b c d e f g h i j k l"], ["UNRATEABLE", "ok", "BADREQUEST"]]
    rows = [{"id": 1, "src": "Say three words."}, {"id": 2, "src": "Hi"}]
    with fake_judge() as url:
        judge = create_judge(JudgeConfig(name="openai", base_url=url, max_workers=3))
        scores = judge.score(rows, completions)
    assert scores[0] == [float(expected_rating(t)) for t in completions[0]] == [3.0, 10.0]
    assert math.isnan(scores[1][0]) and scores[1][1] == 1.0 and math.isnan(scores[1][2])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert create_judge(JudgeConfig(name="openai", base_url=url)).client.api_key == "sk-local"
    monkeypatch.setenv("MY_SERVER_KEY", "k")
    judge = create_judge(JudgeConfig(name="openai", base_url=url, api_key_env="MY_SERVER_KEY"))
    assert judge.client.api_key == "k"  # OpenAI's key only goes to OpenAI


def test_bad_prompt_rows_are_named_by_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "prompts.jsonl"
    file.write_text('{"src": "a"}\n{"prompt": "b"}\n')
    with pytest.raises(PreferenceDataError, match=r"prompts.jsonl, line 2: .*'src' string"):
        load_prompts(file, "train")
    file.write_text('{"src": "a", "tgt": "x"}\n{"src": "a"}\n{"id": 7, "src": "b"}\n')
    assert load_prompts(file, "train") == [
        {"src": "a", "id": "prompts.jsonl:1"},
        {"id": 7, "src": "b"},
    ]


def test_bad_configs_are_one_paragraph(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    args = ["lm", "preference_iterate", str(tmp_path / "out"), "--config-file", str(ONLINE_CONFIG),
            "--config", *online_overrides(tmp_path, tmp_path / "sft")]  # fmt: skip
    status, output = run_in_process([*args, "samples_per_prompt=1"], capfd)
    assert status == 2 and "`samples_per_prompt` at least 2" in output
    status, output = run_in_process([*args, "judge.nmae=x"], capfd)
    assert status == 2 and "config is not valid" in output and "Traceback" not in output
    status, output = run_in_process([*args, "pairs_per_prompt=0"], capfd)
    assert status == 2 and "`pairs_per_prompt` must be at least 1" in output
    status, output = run_in_process([*args, "judge={name: reward_model}"], capfd)
    assert status == 2 and "judge.path=None" in output and not (tmp_path / "out").exists()
    status, output = run_in_process(args[:5], capfd)
    assert status == 2 and "`prompts` field" in output and "`path` field has no default" in output


def test_prompts_per_round_are_fresh_blocks_of_a_seeded_shuffle(tiny_assets: Path) -> None:
    config = load_config(ONLINE_CONFIG, [*online_overrides(tiny_assets, tiny_assets), "rounds=3"])
    every = Iteration(config, tiny_assets).prompts(1)
    train = [row["id"] for row in every if row["split"] == "train"]
    held_out = [row for row in every if row["split"] == "held_out"]
    assert len(train) == 56 and len(held_out) == 8

    config.prompts_per_round = 20
    rounds = [Iteration(config, tiny_assets).prompts(r) for r in (1, 2, 3)]
    blocks = [[row["id"] for row in rows if row["split"] == "train"] for rows in rounds]
    assert all(len(block) == 20 and block == sorted(block, key=train.index) for block in blocks)
    assert not set(blocks[0]) & set(blocks[1])
    assert len(set(blocks[2]) - set(blocks[0]) - set(blocks[1])) == 16  # the rest, then wraps
    assert all([row for row in rows if row["split"] == "held_out"] == held_out for rows in rounds)
    config.seed += 1
    assert [row["id"] for row in Iteration(config, tiny_assets).prompts(1)][:20] != blocks[0]
    config.held_out = config.prompts  # held-out prompts must never be trained on
    with pytest.raises(PreferenceDataError, match=r"56 held-out prompt.*also training prompts"):
        Iteration(config, tiny_assets).prompts(1)
    with pytest.raises(PreferenceConfigError, match="prompts_per_round"):
        load_config(
            ONLINE_CONFIG, [*online_overrides(tiny_assets, tiny_assets), "prompts_per_round=0"]
        )


def test_completions_cut_at_the_length_limit_are_flagged_and_never_paired(
    tmp_path: Path, tiny_assets: Path, tiny_sft: Path
) -> None:
    """The SFT model answers in about 10 tokens: with room for 2 none can end, with
    room for 32 nearly all do; a cut completion joins no pair."""
    from fairseq2_preference.cli import main

    def sample(max_gen_len: int) -> list[dict[str, Any]]:
        out = tmp_path / f"len{max_gen_len}"
        checkpoints = tiny_sft / "checkpoints"
        main(["lm", "preference_sample", str(out), "--no-rich", "--no-exit-on-error", "--config",
              "model.name=last_checkpoint", f"common.assets.prev_checkpoint_dir={checkpoints}",
              "tokenizer.name=tiny_llama", f"common.assets.extra_paths=[{tiny_assets / 'cards'}]",
              f"sample.prompts={tiny_assets / 'data' / 'prompts'}", "sample.split=dev",
              "sample.samples_per_prompt=4",
              f"seq_generator.config.max_gen_len={max_gen_len}"])  # fmt: skip
        return [json.loads(line) for line in (out / "samples.jsonl").open()]

    short = [
        cut
        for row in sample(2)
        for cut, text in zip(row["cut"], row["completions"], strict=True)
        if text
    ]
    assert short and all(short)
    roomy = [cut for row in sample(32) for cut in row["cut"]]
    assert len(roomy) == 32 and sum(roomy) <= 3
    drops: Counter[str] = Counter()
    rows = [
        {"id": "p", "src": "s", "completions": ["good", "bad", "cut"], "cut": [False, False, True]}
    ]
    assert best_vs_worst(rows, [[1.0, 0.5, 0.0]], drops)[0]["tgt_rejected"] == "bad"
    assert drops == {"completions: cut at max_gen_len": 1}


def test_the_lora_export_runs_in_one_process_whatever_the_launcher(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """Stages run under the launcher (torchrun: every rank); the merge-export of a LoRA
    round must not (N processes would write one directory)."""
    failing = f"launcher=[{sys.executable}, -c, 'raise SystemExit(3)']"
    config = load_config(ONLINE_CONFIG, [*online_overrides(tiny_assets, tiny_assets), failing])
    iteration = Iteration(config, tmp_path)
    with pytest.raises(StageFailed, match="exit 3"):
        iteration.run(["lm", "export_hf", "--help"], tmp_path / "launched.log")
    iteration.run_one(["lm", "export_hf", "--help"], tmp_path / "one.log")
    assert "a run's checkpoint as a Hugging Face model" in (tmp_path / "one.log").read_text()


def in_process(calls: list[str], fail_at: str | None = None) -> Any:
    """Runs each stage with our command line in this process (what a subprocess runs,
    without its start-up), recording ``<round dir>/<stage>``; raises at ``fail_at``."""
    from fairseq2_preference.cli import main

    def run(args: list[str], log: Path) -> None:
        stage = f"{Path(args[2]).parent.name}/{Path(args[2]).name}"
        calls.append(stage)
        if stage == fail_at:
            raise StageFailed(f"{stage} interrupted")
        if args[1] == "export_hf":  # it starts fairseq2 itself: a process of its own
            subprocess_runner([])(args, log)
        else:
            main([*args, "--no-exit-on-error"])

    return run


def online_overrides(assets: Path, sft: Path) -> list[str]:
    return [
        f"policy.checkpoint_dir={sft / 'checkpoints'}",
        f"prompts.path={assets / 'data' / 'prompts'}",
        f"held_out.path={assets / 'data' / 'prompts'}",
        f"eval_pairs.path={assets / 'data' / 'preference'}",
        f'overrides=["common.assets.extra_paths=[{assets / "cards"}]", '
        '"tokenizer.name=tiny_llama"]',
    ]


@pytest.mark.slow
def test_three_rounds_from_the_sft_model_raise_the_held_out_score(
    tmp_path: Path, tiny_assets: Path, tiny_sft: Path
) -> None:
    """The demo config: no preference data, a rule judge. Interrupted in round 2's
    training and resumed there; then every policy's held-out score and eval-pair
    reward accuracy (against the SFT model) rise."""
    out = tmp_path / "online"
    overrides = online_overrides(tiny_assets, tiny_sft)

    calls: list[str] = []
    with pytest.raises(StageFailed):
        Iteration(load_config(ONLINE_CONFIG, overrides), out, in_process(calls, "round_2/train"))()
    assert (out / "round_2" / "scores.jsonl").is_file()
    assert not (out / "round_2" / "summary.json").exists()

    with pytest.raises(PreferenceConfigError, match="samples_per_prompt differ"):
        Iteration(load_config(ONLINE_CONFIG, [*overrides, "samples_per_prompt=4"]), out)()

    resumed: list[str] = []
    rows = Iteration(load_config(ONLINE_CONFIG, overrides), out, in_process(resumed))()
    assert resumed == [
        "round_2/train", "round_2/eval_pairs", "round_3/sample", "round_3/train",
        "round_3/eval_pairs", "eval_policy_3/sample",
    ]  # fmt: skip
    assert calls[:4] == [
        "round_1/sample",
        "round_1/train",
        "online/eval_pairs_start",
        "round_1/eval_pairs",
    ]

    held_out = [row["held_out_score"] for row in rows]
    accuracy = [row["eval_reward_accuracy"] for row in rows[:3]]
    print(json.dumps(rows, indent=1))
    # Each score is a mean over 8 prompts x 16 samples: allow its noise (~0.04) per round.
    assert all(b > a - 0.05 for a, b in pairwise(held_out)), held_out
    assert held_out[-1] > held_out[0] + 0.3, held_out
    assert accuracy[-1] > accuracy[0], accuracy
    assert [row["round"] for row in rows] == [1, 2, 3, None]
    assert all(row["pairs"] > 0 for row in rows[:3])
    pairs = (out / "round_3" / "pairs" / "train" / "data.chunk.0000.jsonl").read_text()
    assert all(json.loads(line)["chosen_score"] == 1.0 for line in pairs.splitlines())
    assert (out / "round_3" / "train" / "checkpoints").is_dir()
    assert yaml.safe_load((out / "iterate.yaml").read_text())["rounds"] == 3


@pytest.mark.slow
def test_lora_rounds_hand_the_merged_policy_on(
    tmp_path: Path, tiny_assets: Path, tiny_sft: Path
) -> None:
    """With LoRA each round's adapters are merged into a full model (export_hf), which
    the held-out evaluation, the eval pairs and the next round sample from."""
    out = tmp_path / "online"
    lora = [
        *online_overrides(tiny_assets, tiny_sft), "samples_per_prompt=4",
        "train.overrides=[regime.num_steps=4, regime.validate_every_n_steps=4, "
        "regime.checkpoint_every_n_steps=4, 'lora={rank: 4, alpha: 8}']",
    ]  # fmt: skip
    calls: list[str] = []
    rows = Iteration(load_config(ONLINE_CONFIG, [*lora, "rounds=1"]), out, in_process(calls))()
    merged = out / "round_1" / "policy"
    assert (merged / "config.json").is_file() and rows[1]["policy"] == str(merged)
    assert calls.count("round_1/train") == 2  # training, then the export of its run
    assert rows[0]["eval_reward_accuracy"] is not None
    metrics = (out / "round_1" / "train" / "metrics" / "train.jsonl").read_text().splitlines()
    assert json.loads(metrics[0])["DPO Loss"] == pytest.approx(math.log(2), abs=1e-5)

    resumed: list[str] = []
    Iteration(load_config(ONLINE_CONFIG, [*lora, "rounds=2"]), out, in_process(resumed))()
    assert resumed[:2] == ["round_2/sample", "round_2/train"]  # round 1 is not redone
    config = yaml.safe_load((out / "round_2" / "train" / "config.yaml").read_text())
    assert config["model"]["path"] == str(merged) and config["lora"]["rank"] == 4


@pytest.mark.slow
@pytest.mark.distributed
def test_a_round_under_torchrun(tmp_path: Path, tiny_assets: Path, tiny_sft: Path) -> None:
    """Sampling and training each on 2 processes (gloo): every prompt sampled K times
    once, in order, and DPO trained from the SFT policy, with the reference cache."""
    out = tmp_path / "online"
    launcher = (
        f"launcher=[{sys.executable}, -m, torch.distributed.run, --standalone, "
        "--nproc-per-node=2, -m, fairseq2_preference]"
    )
    config = load_config(
        ONLINE_CONFIG,
        [
            *online_overrides(tiny_assets, tiny_sft), "eval_pairs=null", "held_out=null",
            "rounds=1", "samples_per_prompt=3", launcher,
        ],
    )  # fmt: skip
    config.judge = JudgeConfig(name="contains", field="src")  # every sample "wins"...
    with pytest.raises(PreferenceDataError, match="Round 1: no training pair"):
        Iteration(config, out)()  # ...so no pair: a clear error, not a run that trained nothing
    samples = [json.loads(line) for line in (out / "round_1" / "sample" / "samples.jsonl").open()]
    prompts = load_prompts(tiny_assets / "data" / "prompts", "train")
    assert [row["id"] for row in samples] == [row["id"] for row in prompts]
    assert all(len(row["completions"]) == 3 for row in samples)

    (out / "round_1" / "scores.jsonl").unlink()
    (out / "iterate.yaml").unlink()
    config.judge = JudgeConfig(name="contains")
    cache = tmp_path / "reference_cache"  # the round's reference log-probs, computed once
    config.train.overrides += ["reference_model.cache=auto", f"reference_model.cache_dir={cache}"]
    rows = Iteration(config, out)()
    metrics = (out / "round_1" / "train" / "metrics" / "train.jsonl").read_text().splitlines()
    assert rows[0]["pairs"] > 0 and json.loads(metrics[0])["DPO Loss"] == pytest.approx(
        math.log(2), abs=1e-4
    )
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1  # the train split's entry
    ranks = sorted(p.name for p in (out / "round_1" / "sample" / "outputs").iterdir())
    assert ranks == ["rank_0.jsonl", "rank_1.jsonl"]
