"""Models in and out: checkpoints by ``model.path`` and hub cards, Hugging Face export,
generation.

:mod:`.checkpoints` describes a local Llama directory so that ``model.path`` alone
loads it (:mod:`.llama_config` reads its ``config.json`` / ``params.json``);
:mod:`.export` writes a run's checkpoint in the Hugging Face layout;
:mod:`.generation` samples from a trained model; ``cards/`` points fairseq2's stock
Llama 3.x names at their hub checkpoints.
"""
