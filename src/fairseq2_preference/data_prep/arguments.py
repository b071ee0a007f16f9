"""What the shared output options of a data-preparation command line build (:mod:`.commands`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from fairseq2_preference.data_prep.formatting import make_formatter
from fairseq2_preference.data_prep.writer import PrepRequest


def prep_request(
    args: argparse.Namespace, default_name: str, source: str, options: Mapping[str, Any]
) -> PrepRequest:
    """The :class:`PrepRequest` of the parsed output options (see :mod:`.commands`)."""
    formatter = make_formatter(args.chat_template)
    return PrepRequest(
        name=args.name or f"{default_name}_{formatter.slug}",
        data_dir=args.data_dir,
        card_dir=args.card_dir,
        source=source,
        options={**options, "chat_template": args.chat_template},
        formatter=formatter,
        dev_size=args.dev_size,
        seed=args.seed,
        exclude_prompts=args.exclude_prompts,
        force=args.force,
    )
