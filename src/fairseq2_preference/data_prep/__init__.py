"""Converters that turn public preference data into our jsonl format plus asset cards.

The scripts in the repository's ``datasets/`` folder are thin command lines
over :mod:`.oasst` (OpenAssistant2), :mod:`.hf_preference` (Hugging Face
prompt/chosen/rejected datasets) and :mod:`.gsm8k` (sampled GSM8K negatives).
"""
