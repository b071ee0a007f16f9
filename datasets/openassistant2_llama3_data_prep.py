"""Build OpenAssistant2 preference and SFT data for Llama 3 Instruct, with asset cards.

    python datasets/openassistant2_llama3_data_prep.py --data_dir DIR --card_dir DIR [--source LOCAL_COPY]

A thin command line over ``fairseq2_preference.data_prep.oasst``; run with
``--help`` for every option. See datasets/DATASETS.md.
"""

from fairseq2_preference.data_prep.commands import run_script

if __name__ == "__main__":
    run_script("oasst")
