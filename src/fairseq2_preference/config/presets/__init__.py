"""Packaged presets: ``fairseq2 lm COMMAND --preset NAME`` (``--list-presets`` lists them).

A preset is a YAML overlay on the recipe's defaults, in ``<command>/<name>.yaml``;
its first comment line is its description. The names are fairseq2 0.4's.
"""
