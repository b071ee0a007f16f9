"""Reference log-probs computed once: the cache, its filling, and training without a reference.

A reference model is frozen, so its log-probs of a given example never change;
running it at every step of every run of a sweep repeats the same work and holds
a full copy of its weights on every rank. This package stores them per example,
content-addressed by everything that determines them (:mod:`.fingerprint`),
atomically and safely shared (:mod:`.store`); fills the cache forward-only and
data-parallel (:mod:`.fill`, :mod:`.command`); and gives each batch its
examples' numbers (:mod:`.table`), from the cache or from the data rows
(:mod:`.rows`), so that training holds no reference model (:mod:`.setup`).
"""

from __future__ import annotations

from fairseq2_preference.reference.store import ReferenceCache as ReferenceCache
from fairseq2_preference.reference.store import default_cache_dir as default_cache_dir
from fairseq2_preference.reference.table import ReferenceTable as ReferenceTable
