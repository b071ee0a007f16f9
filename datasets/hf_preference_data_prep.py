"""Convert a Hugging Face preference dataset (e.g. UltraFeedback binarized, HH-RLHF).

    python datasets/hf_preference_data_prep.py --source HuggingFaceH4/ultrafeedback_binarized \
        --train_split train_prefs --dev_split test_prefs --data_dir DIR --card_dir DIR

A thin command line over ``fairseq2_preference.data_prep.hf_preference``; see
``--help`` and datasets/DATASETS.md.
"""

from fairseq2_preference.data_prep.commands import run_script

if __name__ == "__main__":
    run_script("hf_preference")
