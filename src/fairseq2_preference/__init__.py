"""fairseq2-preference: preference-optimization finetuning recipes for fairseq2 0.8.1."""

from __future__ import annotations

__version__ = "0.1.0"
