"""``fairseq2 --help`` answers without importing fairseq2 or torch (seconds of start-up)."""

from __future__ import annotations

import sys

from helpers import run_cli

PROBE = """
import sys
from fairseq2_preference.cli import main
for args in (["--help"], ["lm", "--help"]):
    try:
        main(args)
    except SystemExit as done:
        assert done.code == 0, done.code
heavy = sorted(m for m in ("torch", "fairseq2", "datasets", "transformers") if m in sys.modules)
print("heavy:", heavy)
"""


def test_help_imports_nothing_heavy() -> None:
    result = run_cli([sys.executable, "-c", PROBE], timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "preference_finetune" in result.stdout and "plot_runs" in result.stdout
    assert "heavy: []" in result.stdout


DATA_PREP_PROBE = """
import sys
from fairseq2_preference.data_prep.commands import PARSERS, run_script
for name in PARSERS:
    for args in (["--bogus"], ["--help"]):
        try:
            run_script(name, args)
        except SystemExit as done:
            assert done.code == (0 if args == ["--help"] else 2), (name, args, done.code)
heavy = sorted(m for m in ("torch", "fairseq2", "datasets", "transformers") if m in sys.modules)
print("heavy:", heavy)
"""


def test_data_prep_scripts_answer_a_bad_argument_before_importing_anything_heavy() -> None:
    """A mistyped option fails at once: the command line is parsed before fairseq2
    (seconds of import) is loaded."""
    result = run_cli([sys.executable, "-c", DATA_PREP_PROBE], timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "heavy: []" in result.stdout
    assert result.stderr.count("error: the following arguments are required") == 3
