"""Asset cards this package adds to every fairseq2 process (see ``extension.py``)."""
