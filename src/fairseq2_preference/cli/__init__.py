"""The ``fairseq2`` command: ``fairseq2 GROUP COMMAND [options]``.

:mod:`.commands` is the table of commands (each a recipe or a plain function,
imported only when it runs, so ``--help`` stays fast); :mod:`.arguments` the
options this package adds to fairseq2's own; :mod:`.main` the dispatch and the
one-paragraph errors.
"""

from __future__ import annotations

from fairseq2_preference.cli.main import main as main
