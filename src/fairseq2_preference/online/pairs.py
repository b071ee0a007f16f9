"""Best-vs-worst pairs from judged samples (Xu et al. 2023, arXiv 2312.16682;
Yuan et al. 2024, "Self-Rewarding Language Models", arXiv 2401.10020).

Of a prompt's distinct, non-empty, scored completions, the highest-scored one
is chosen and the lowest-scored one rejected; ties are broken by sample order
(the earliest of the best, the latest of the worst), so the choice is
deterministic given the samples. With ``per_prompt`` n > 1, the
second best is paired with the second worst, and so on, while the two differ
in score and no completion is used twice. A completion ``cut`` at the sampler's
length limit joins no pair: it has no real end, and training would append EOS to
it. A prompt whose completions all score the same teaches nothing and gives no
pair. Rows are ``generic_preference``
rows with the two scores beside them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from fairseq2_preference.online.judges import Scores


def best_vs_worst(
    samples: Sequence[Mapping[str, Any]], scores: Scores, drops: Counter[str], per_prompt: int = 1
) -> list[dict[str, Any]]:
    pairs = []
    for row, row_scores in zip(samples, scores, strict=True):
        scored: dict[str, float] = {}
        cut = row.get("cut") or [False] * len(row["completions"])
        for text, score, was_cut in zip(row["completions"], row_scores, cut, strict=True):
            if was_cut:
                drops["completions: cut at max_gen_len"] += 1
            elif not text.strip():
                drops["completions: empty"] += 1
            elif math.isnan(score):
                drops["completions: the judge gave no score"] += 1
            elif text in scored:
                drops["completions: repeated"] += 1
            else:
                scored[text] = score
        if len(scored) < 2:
            drops["prompts: fewer than two distinct scored completions"] += 1
            continue
        ranked = sorted(scored, key=lambda t: -scored[t])  # stable: ties keep sample order
        if scored[ranked[0]] == scored[ranked[-1]]:
            drops["prompts: every completion scored the same"] += 1
            continue
        for n in range(min(per_prompt, len(ranked) // 2)):
            best, worst = ranked[n], ranked[len(ranked) - 1 - n]
            if scored[best] == scored[worst]:
                break
            pairs.append(
                {
                    "id": str(row["id"]) if n == 0 else f"{row['id']}#{n}",
                    "src": row["src"],
                    "tgt_chosen": best,
                    "tgt_rejected": worst,
                    "chosen_score": scored[best],
                    "rejected_score": scored[worst],
                }
            )
    return pairs
