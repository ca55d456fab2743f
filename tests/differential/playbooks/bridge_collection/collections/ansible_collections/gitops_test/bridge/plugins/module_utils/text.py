# A collection module_utils, imported by the module below (checks the collection's import path).
from __future__ import annotations


def line_of(text):
    return text.rstrip("\n") + "\n"
