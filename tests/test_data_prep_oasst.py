"""OpenAssistant2 preparation on the bundled sample, checked against hand-computed pairs.

The sample (src/fairseq2_preference/data_prep/sample/) holds 8 trees; by hand, with
the defaults (English, rank-0 vs the rest, all turns, no synthetic replies):

* A  root: rank 0 vs ranks 1 and 2 → 2 pairs; its follow-up A5 → 1 pair (3 turns
  of context); A8 has a single unranked reply → SFT only.
* B  the rank-0 reply is deleted → nothing.          C, F  Spanish, German → nothing.
* D  the rank-1 reply is spam, one reply unranked → SFT only.
* E  the rank-1 reply is synthetic → SFT only; E4 (a deleted prompt) → nothing.
* G  root → 1 pair; G4 → 2 pairs.
* H  repeats A's prompt and replies (a duplicate pair), plus a rank-2 reply equal
  to the rank-0 one (chosen == rejected) → both dropped.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.formatting import Llama3Formatter
from fairseq2_preference.data_prep.hygiene import clean
from fairseq2_preference.data_prep.oasst import BuildOptions, build_examples, main
from fairseq2_preference.data_prep.oasst_messages import load_messages
from fairseq2_preference.data_prep.writer import PrepResult

from helpers import REPO, read_jsonl_dir, run_cli, train
from oasst_formats import (
    SAMPLE,
    seed_datasets_cache,
    write_messages,
    write_parquet_repo,
    write_trees,
)

FRANCE = "What is the capital of France?"
GERMANY = "And what is the capital of Germany?"
PASTA = "What is an easy pasta recipe?"
COOK = "I want to learn to cook. Where should I start?"
PARIS = "The capital of France is Paris."
STARTER = "Start with simple dishes such as eggs, pasta and soups, and learn basic knife skills."
SPAGHETTI = "Cook spaghetti, then toss it with olive oil, garlic, chili flakes and parsley."


def pairs_of(examples: list[Example]) -> Counter[tuple[str, str, str]]:
    return Counter((ex.turns[-1][1], ex.chosen, ex.rejected or "") for ex in examples)


def build(**options: object) -> tuple[list[Example], list[Example], Counter[str]]:
    pairs, sft, _, drops = build_all(**options)
    return pairs, sft, drops


def build_all(
    **options: object,
) -> tuple[list[Example], list[Example], list[Example], Counter[str]]:
    drops: Counter[str] = Counter()
    built = build_examples(load_messages(SAMPLE), BuildOptions(**options), drops)  # type: ignore[arg-type]
    return (*built, drops)


def test_default_pairs_match_the_hand_computed_ones() -> None:
    pairs, sft, drops = build()
    assert pairs_of(pairs) == Counter(
        {
            (FRANCE, PARIS, "Paris, I think."): 2,  # A and H
            (FRANCE, PARIS, "It is Lyon, the largest city in France."): 1,
            (FRANCE, PARIS, PARIS): 1,  # H: rank 2 repeats rank 0
            (GERMANY, "The capital of Germany is Berlin.", "Germany's capital is Munich."): 1,
            (COOK, STARTER, "Buy a cookbook."): 1,
            (PASTA, SPAGHETTI, "Boil pasta and add ketchup."): 1,
            (PASTA, SPAGHETTI, "Pasta is made from wheat."): 1,
        }
    )
    assert drops == Counter(
        {
            "group skipped: language not selected": 2,  # C, F
            "group skipped: deleted, flagged or synthetic message in the conversation": 1,  # E4
            "no pair: fewer than two usable ranked replies": 3,  # A8, D, E
            "no pair: the rank-0 reply is deleted, flagged or synthetic": 1,  # B
            "unpaired: neither best, worst nor clearly rated": 4,  # middle ranks of A, G4, H; B
        }
    )
    # SFT: the rank-0 (or only) reply of A, A5, A8, D, E, G, G4, H.
    assert sorted(ex.turns[-1][1] for ex in sft) == sorted(
        [
            FRANCE,
            GERMANY,
            "Are you sure?",
            "Tell me a joke about computers.",
            "Explain recursion briefly.",
            COOK,
            PASTA,
            FRANCE,
        ]
    )

    cleaned_drops: Counter[str] = Counter()
    cleaned = clean(pairs, set(), cleaned_drops, "pairs")
    assert len(cleaned) == 6
    assert cleaned_drops == Counter(
        {"pairs: chosen and rejected are identical": 1, "pairs: exact duplicate": 1}
    )


def test_unpaired_feedback_matches_the_hand_computed_one() -> None:
    """Ranked replies: best up, worst down; others by their quality label (0.75 in the
    sample: up). The same completion rated both ways for a prompt is dropped."""
    _, _, unpaired, _ = build_all()
    got = Counter((ex.turns[-1][1], ex.chosen, ex.label) for ex in unpaired)
    assert got == Counter(
        {
            (FRANCE, PARIS, True): 2,  # A rank 0, H rank 0
            (FRANCE, "It is Lyon, the largest city in France.", False): 1,  # A last
            (FRANCE, PARIS, False): 1,  # H's rank 2 repeats its rank 0
            (GERMANY, "The capital of Germany is Berlin.", True): 1,
            (GERMANY, "Germany's capital is Munich.", False): 1,
            ("Are you sure?", "Yes, Paris has been the capital for centuries.", True): 1,
            ("Write a haiku about rain.", "Rain is water falling from clouds.", False): 1,  # B
            ("Tell me a joke about computers.", "Why did the computer go to the doctor? It "
             "had a virus.", True): 1,  # D: one usable ranked reply, by quality
            ("Tell me a joke about computers.", "I do not know any jokes.", True): 1,
            ("Explain recursion briefly.", "Recursion is when a function calls itself on a "
             "smaller part of the problem.", True): 1,  # rank 1 is synthetic: by quality
            (COOK, STARTER, True): 1,
            (COOK, "Buy a cookbook.", False): 1,
            (PASTA, SPAGHETTI, True): 1,
            (PASTA, "Pasta is made from wheat.", False): 1,
        }
    )  # fmt: skip
    drops: Counter[str] = Counter()
    assert len(clean(unpaired, set(), drops, "unpaired")) == 12
    assert drops == Counter({"unpaired: the same completion is rated both ways": 3})


def test_multi_turn_context_and_llama3_format() -> None:
    pairs, _, _ = build()
    (germany,) = [ex for ex in pairs if ex.turns[-1][1] == GERMANY]
    assert germany.turns == (("user", FRANCE), ("assistant", PARIS), ("user", GERMANY))
    assert Llama3Formatter()(germany.turns) == (
        f"<|start_header_id|>user<|end_header_id|>\n\n{FRANCE}<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{PARIS}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{GERMANY}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize(
    ("options", "num_pairs"),
    [
        ({"first_turn_only": True}, 5),  # A 2, G 1, H 2 (before hygiene)
        ({"pairing": "best_vs_worst"}, 5),  # A, A5, G, G4, H
        ({"include_synthetic": True}, 9),  # + E's rank 0 vs its synthetic rank 1
        ({"langs": ("es",)}, 1),
        ({"langs": None}, 10),  # + C and F
    ],
)
def test_options(options: dict[str, object], num_pairs: int) -> None:
    pairs, _, _ = build(**options)
    assert len(pairs) == num_pairs
    if options.get("pairing") == "best_vs_worst":
        assert (FRANCE, PARIS, "It is Lyon, the largest city in France.") in pairs_of(pairs)
        assert (FRANCE, PARIS, "Paris, I think.") not in pairs_of(pairs)


def prep(data: Path, cards: Path, *args: str) -> PrepResult:
    return main(["--data_dir", str(data), "--card_dir", str(cards), *args])


@pytest.mark.parametrize(
    "fmt", ["messages", "messages.gz", "trees", "trees.gz", "parquet", "repo_dir"]
)
def test_every_source_format_gives_the_same_pairs(tmp_path: Path, fmt: str) -> None:
    prep(tmp_path / "ref", tmp_path / "ref_cards", "--source", str(SAMPLE), "--dev_size", "1")
    if fmt.startswith("messages"):
        source = write_messages(
            tmp_path / f"oasst2_sample.messages.jsonl{'.gz' * fmt.endswith('gz')}"
        )
    elif fmt.startswith("trees"):
        source = write_trees(tmp_path / f"oasst2_sample.trees.jsonl{'.gz' * fmt.endswith('gz')}")
    else:
        repo = write_parquet_repo(tmp_path / "oasst2")
        source = repo if fmt == "repo_dir" else next((repo / "data").glob("train-*.parquet"))
    prep(tmp_path / "out", tmp_path / "cards", "--source", str(source), "--dev_size", "1")
    if fmt == "parquet":  # one file holds only the train trees
        assert read_jsonl_dir(tmp_path / "out" / "preference")
        return
    for kind in ("preference", "instruction"):
        assert read_jsonl_dir(tmp_path / "out" / kind) == read_jsonl_dir(tmp_path / "ref" / kind)


def test_the_seed_command_works_unchanged_offline(tmp_path: Path) -> None:
    """`python datasets/openassistant2_llama3_data_prep.py --data_dir D --card_dir C`,
    with the hub dataset in the local Hugging Face cache and no network."""
    cache = seed_datasets_cache(tmp_path / "hf_datasets", write_parquet_repo(tmp_path / "oasst2"))
    command = [
        sys.executable,
        str(REPO / "datasets" / "openassistant2_llama3_data_prep.py"),
        "--data_dir",
        str(tmp_path / "data"),
        "--card_dir",
        str(tmp_path / "cards"),
    ]
    env = {"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = run_cli(command, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "openassistant2_llama3: 5 conversation groups" in result.stdout  # 1 unpaired-only
    assert len(read_jsonl_dir(tmp_path / "data" / "preference")) == 6
    assert len(read_jsonl_dir(tmp_path / "data" / "unpaired")) == 12
    cards = list(
        yaml.safe_load_all((tmp_path / "cards" / "openassistant2_llama3.yaml").read_text())
    )
    assert {c["name"] for c in cards} >= {
        "openassistant2_llama3_preference",
        "openassistant2_llama3_preference_train",
        "openassistant2_llama3_instruction",
        "openassistant2_llama3_instruction_train",
        "openassistant2_llama3_unpaired_train",
    }


def test_rerun_is_idempotent_and_force_rebuilds(tmp_path: Path) -> None:
    args = ("--source", str(SAMPLE), "--dev_size", "1")
    prep(tmp_path / "d", tmp_path / "c", *args)
    files = sorted((tmp_path / "d").rglob("*.jsonl"))
    stamps = [f.stat().st_mtime_ns for f in files]
    marker = (tmp_path / "d" / "prep.json").read_text()

    result = prep(tmp_path / "d", tmp_path / "c", *args)
    assert result.up_to_date
    assert [f.stat().st_mtime_ns for f in files] == stamps

    changed = prep(tmp_path / "d", tmp_path / "c", *args, "--pairing", "best_vs_worst")
    assert not changed.up_to_date and (tmp_path / "d" / "prep.json").read_text() != marker

    forced = prep(tmp_path / "d", tmp_path / "c", *args, "--pairing", "best_vs_worst", "--force")
    assert not forced.up_to_date
    assert not list((tmp_path / "d").rglob("*.tmp")) and not list((tmp_path / "d").rglob(".*.tmp"))


def test_split_is_by_tree_and_deterministic(tmp_path: Path) -> None:
    prep(tmp_path / "a", tmp_path / "ca", "--source", str(SAMPLE), "--dev_size", "1")
    prep(tmp_path / "b", tmp_path / "cb", "--source", str(SAMPLE), "--dev_size", "1")
    for kind in ("preference", "instruction"):
        assert read_jsonl_dir(tmp_path / "a" / kind) == read_jsonl_dir(tmp_path / "b" / kind)
    trees = {
        split: {
            row["id"].split(":")[0] for row in read_jsonl_dir(tmp_path / "a" / "preference" / split)
        }
        for split in ("train", "dev")
    }
    by_id = {m.message_id: m.tree_id for m in load_messages(SAMPLE)}
    assert not {by_id[p] for p in trees["train"]} & {by_id[p] for p in trees["dev"]}


def test_small_sources_keep_a_tenth_as_dev(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prep(tmp_path / "d", tmp_path / "c", "--source", str(SAMPLE))  # default --dev_size 500
    assert "Only 4 groups to split: holding out 0" in capsys.readouterr().out
    assert not (tmp_path / "d" / "preference" / "dev").exists()


def test_eval_prompts_are_excluded(tmp_path: Path) -> None:
    exclude = tmp_path / "alpaca_eval.json"
    exclude.write_text('[{"instruction": "what is the capital   of FRANCE?", "output": "x"}]')
    result = prep(
        tmp_path / "d",
        tmp_path / "c",
        "--source",
        str(SAMPLE),
        "--dev_size",
        "1",
        "--exclude_prompts",
        str(exclude),
    )
    # A (3 pairs, incl. the follow-up) and H (2) start with that prompt.
    assert result.drops["pairs: prompt is in the exclusion list"] == 5
    assert sum(v for k, v in result.counts.items() if k.startswith("preference")) == 3


def test_chat_template_formatting(tmp_path: Path, tiny_assets: Path) -> None:
    import shutil

    from transformers import AutoTokenizer

    tok_dir = tmp_path / "tok"
    shutil.copytree(tiny_assets / "tokenizer", tok_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
        "{{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>{% endif %}"
    )
    tokenizer.save_pretrained(str(tok_dir))
    result = prep(
        tmp_path / "d",
        tmp_path / "c",
        "--source",
        str(SAMPLE),
        "--dev_size",
        "1",
        "--chat_template",
        str(tok_dir),
    )
    assert result.card_file.name == "openassistant2_tok.yaml"
    rows = read_jsonl_dir(tmp_path / "d" / "preference")
    assert any(
        r["src"] == f"<|start_header_id|>user<|end_header_id|>{FRANCE}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>"
        for r in rows
    )  # BOS removed: the fairseq2 tokenizer adds it


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "criterion"), [("preference", "dpo"), ("unpaired", "kto")])
def test_written_cards_train_a_tiny_model(
    tmp_path: Path, tiny_assets: Path, kind: str, criterion: str
) -> None:
    """Pairs with DPO; thumbs up/down with KTO."""
    prep(tmp_path / "data", tmp_path / "cards", "--source", str(SAMPLE), "--dev_size", "1")
    out = tmp_path / "run"
    metrics = train(
        out,
        tiny_assets,
        f"common.assets.extra_paths=[{tiny_assets / 'cards'}, {tmp_path / 'cards'}]",
        f"criterion={{name: {criterion}}}",
        f"dataset.name=openassistant2_llama3_{kind}_train",
        f"valid_dataset={{name: openassistant2_llama3_{kind}_dev}}",
        "dataset.max_seq_len=256",
        "dataset.max_num_tokens=4096",
        "regime.num_steps=6",
        "regime.validate_every_n_steps=3",
        "regime.checkpoint_every_n_steps=6",
    )
    assert float(metrics[-1]["Loss"]) < float(metrics[0]["Loss"])  # type: ignore[arg-type]
    assert (out / "metrics" / "valid.jsonl").is_file()
    assert os.path.getsize(out / "metrics" / "valid.jsonl") > 0
