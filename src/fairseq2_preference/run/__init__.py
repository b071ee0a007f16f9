"""The life of a run: its directory, the finite guard, the console, the report.

:mod:`.directory` refuses to resume a run with settings that change what it
trains; :mod:`.finite_guard` stops at the first non-finite loss or gradient;
:mod:`.quiet_logs` and :mod:`.log_masking` keep the console readable and secrets
out of every log; :mod:`.series`, :mod:`.curves` and :mod:`.report` read what a
run logged and write ``curves.png`` and ``summary.txt``.

Light to import: the command line installs the console filters before fairseq2
is imported.
"""
