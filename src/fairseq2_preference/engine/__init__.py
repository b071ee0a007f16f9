"""The log-prob engine: per-sequence log-probability sums without ``[tokens, V]`` logits.

:mod:`.scoring` runs a model over a batch and stops it short of its output
projection; :mod:`.logprobs` projects only the scored positions, in chunks, in
float32, recomputed in backward; :mod:`.attention` gives packed and padded
batches causal attention without a mask tensor.
"""
