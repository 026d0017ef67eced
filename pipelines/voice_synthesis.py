"""Kept so that scripts using ``pipelines.voice_synthesis`` keep working (``python -m pipelines.voice_synthesis ...`` and
imports); the code lives in :mod:`pipelines.voice.synthesis`.
"""
import sys

from pipelines.voice import synthesis as _target

if __name__ == "__main__":
    sys.exit(_target.main())

sys.modules[__name__] = _target  # one module under both names: same objects, same state
