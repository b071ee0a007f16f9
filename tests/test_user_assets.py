"""``common.assets.user_paths`` adds a user's cards to those the config points to."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fairseq2_preference.errors import PreferenceConfigError
from test_data_prep_hf import shape_rows

from helpers import regime, train, write_jsonl

SHORT = regime(2, 2)


@pytest.mark.slow
def test_a_user_card_directory_adds_to_the_configured_one(
    tmp_path: Path, tiny_assets: Path
) -> None:
    write_jsonl(tmp_path / "mine" / "pairs.jsonl", shape_rows("strings") * 4)
    cards = tmp_path / "mine" / "cards"
    cards.mkdir()
    (cards / "mine.yaml").write_text(
        "name: my_pairs\ndataset_family: hf_preference\ndata: ../pairs.jsonl\n"
    )
    # The model card (tiny_llama) is only in `extra_paths`, the dataset card only
    # in `user_paths`: the run needs both.
    metrics = train(
        tmp_path / "run",
        tiny_assets,
        f"common.assets.user_paths=[{cards}]",
        "dataset.name=my_pairs",
        *SHORT,
    )
    assert float(metrics[0]["Loss"]) == pytest.approx(math.log(2), abs=1e-5)  # type: ignore[arg-type]


def test_a_missing_user_card_directory_is_an_error(tmp_path: Path, tiny_assets: Path) -> None:
    missing = tmp_path / "no_such_cards"
    with pytest.raises(PreferenceConfigError, match=rf"card directory {missing} .* does not exist"):
        train(tmp_path / "run", tiny_assets, f"common.assets.user_paths=[{missing}]", *SHORT)
