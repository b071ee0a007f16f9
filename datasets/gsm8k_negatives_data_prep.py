"""Mine GSM8K preference pairs: gold solutions vs the model's well-formatted wrong answers.

    python datasets/gsm8k_negatives_data_prep.py --model llama3_1_8b_instruct \
        --data_dir DIR --card_dir DIR [--source local_gsm8k.jsonl] [--limit 1000]

A thin command line over ``fairseq2_preference.data_prep.gsm8k``; see ``--help``
and datasets/DATASETS.md.
"""

from fairseq2_preference.data_prep.commands import run_script

if __name__ == "__main__":
    run_script("gsm8k")
