"""The bundled oasst2 sample in every format the loader accepts, built for tests.

The sample ships as the project's ``*.messages.jsonl`` export. From it, this
module writes the Hugging Face parquet layout (with the dataset's exact
features: struct-of-lists ``emojis``/``labels``, nullable int32 ``rank``), the
nested ``*.trees.jsonl`` export, gzipped variants, and a seeded Hugging Face
``datasets`` cache under which ``load_dataset("OpenAssistant/oasst2")`` works
offline — as it does for a user who loaded the dataset once before.
"""

from __future__ import annotations

import gzip
import json
import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SAMPLE = Path(
    str(files("fairseq2_preference.data_prep") / "sample" / "oasst2_sample.messages.jsonl")
)

DETOXIFY_KEYS = (
    "toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat",
    "sexual_explicit",
)  # fmt: skip

HF_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("parent_id", pa.string()),
        ("user_id", pa.string()),
        ("created_date", pa.string()),
        ("text", pa.string()),
        ("role", pa.string()),
        ("lang", pa.string()),
        ("review_count", pa.int32()),
        ("review_result", pa.bool_()),
        ("deleted", pa.bool_()),
        ("rank", pa.int32()),
        ("synthetic", pa.bool_()),
        ("model_name", pa.string()),
        ("detoxify", pa.struct([(k, pa.float64()) for k in DETOXIFY_KEYS])),
        ("message_tree_id", pa.string()),
        ("tree_state", pa.string()),
        ("emojis", pa.struct([("name", pa.list_(pa.string())), ("count", pa.list_(pa.int32()))])),
        (
            "labels",
            pa.struct(
                [
                    ("name", pa.list_(pa.string())),
                    ("value", pa.list_(pa.float64())),
                    ("count", pa.list_(pa.int32())),
                ]
            ),
        ),
    ]
)


def export_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines()]


def hf_row(m: dict[str, Any]) -> dict[str, Any]:
    """An export message as a Hugging Face row (the inverse of OA's convert_hf_message)."""
    emojis, labels = m.get("emojis") or {}, m.get("labels") or {}
    row = {name: m.get(name) for name in HF_SCHEMA.names}
    row["emojis"] = {"name": list(emojis), "count": list(emojis.values())}
    row["labels"] = {
        "name": list(labels),
        "value": [v["value"] for v in labels.values()],
        "count": [v["count"] for v in labels.values()],
    }
    return row


def write_parquet_repo(root: Path, validation_trees: int = 2) -> Path:
    """``root/data/{train,validation}-*.parquet``, split by tree like the real dataset."""
    rows = [hf_row(m) for m in export_rows()]
    trees = list(dict.fromkeys(r["message_tree_id"] for r in rows))
    held_out = set(trees[-validation_trees:])
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, keep in (("train", False), ("validation", True)):
        part = [r for r in rows if (r["message_tree_id"] in held_out) == keep]
        table = pa.Table.from_pylist(part, schema=HF_SCHEMA)
        pq.write_table(table, root / "data" / f"{split}-00000-of-00001-0a1b2c3d.parquet")
    return root


def write_trees(path: Path) -> Path:
    """The nested ``*.trees.jsonl`` export: tree fields on the tree, not on the nodes."""
    rows = export_rows()
    nodes = {
        m["message_id"]: {k: v for k, v in m.items() if k not in ("message_tree_id", "tree_state")}
        for m in rows
    }
    trees = []
    for m in rows:
        parent = m.get("parent_id")
        if parent is None:
            trees.append(
                {"message_tree_id": m["message_tree_id"], "tree_state": m["tree_state"],
                 "prompt": nodes[m["message_id"]]}
            )  # fmt: skip
        else:
            nodes[parent].setdefault("replies", []).append(nodes[m["message_id"]])
    _write_lines(path, [json.dumps(t, ensure_ascii=False) for t in trees])
    return path


def write_messages(path: Path) -> Path:
    _write_lines(path, SAMPLE.read_text().splitlines())
    return path


def _write_lines(path: Path, lines: list[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)


def seed_datasets_cache(cache: Path, repo: Path) -> Path:
    """Prepare ``repo``'s parquet files into a ``datasets`` cache as the hub dataset
    ``OpenAssistant/oasst2`` (what ``load_dataset`` leaves behind after a first
    online load), so that it loads offline with ``HF_HUB_OFFLINE=1``."""
    import datasets

    data = repo / "data"
    builder = datasets.load_dataset_builder(
        "parquet",
        data_files={
            "train": str(next(data.glob("train-*.parquet"))),
            "validation": str(next(data.glob("validation-*.parquet"))),
        },
        cache_dir=str(cache / "staging"),
    )
    builder.download_and_prepare()
    prepared = Path(builder.cache_dir)
    target = cache / "OpenAssistant___oasst2" / "default" / "0.0.0" / prepared.name
    shutil.copytree(prepared, target)
    for arrow in target.glob("parquet-*.arrow"):
        arrow.rename(target / arrow.name.replace("parquet-", "oasst2-"))
    info = json.loads((target / "dataset_info.json").read_text())
    info.update(dataset_name="oasst2", config_name="default")
    (target / "dataset_info.json").write_text(json.dumps(info))
    shutil.rmtree(cache / "staging")
    return cache
