"""The CPU demo's material: a tiny Llama, its tokenizer and cards, the synthetic task.

``python -m fairseq2_preference.tiny [DIR]`` builds the assets (:mod:`.assets`);
:mod:`.cards` says where they live by default and when a run reads their cards;
:mod:`.task` is the colour task a tiny model learns and generalises;
:mod:`.summary` is what ``quick-start.sh`` prints after its demo.
"""
