"""Kept so that scripts using ``pipelines.text_generation`` keep working (``python -m pipelines.text_generation ...`` and
imports); the code lives in :mod:`pipelines.text.generation`.
"""
import sys

from pipelines.text import generation as _target

if __name__ == "__main__":
    sys.exit(_target.main())

sys.modules[__name__] = _target  # one module under both names: same objects, same state
