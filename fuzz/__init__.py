"""Fuzz targets for offrecord's parsers and entry points.

:mod:`fuzz.targets` holds one plain function per target, taking ``bytes``;
Atheris (:mod:`fuzz.run`, ``scripts/fuzz.sh``) and Hypothesis
(``tests/fuzz/``) call the same functions.  A target returns normally when its
contract held and raises anything else (an ``AssertionError`` for a broken
invariant, or the unexpected exception itself) when it did not.  See
docs/fuzzing.md.
"""
