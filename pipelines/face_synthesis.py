"""Kept so that scripts using ``pipelines.face_synthesis`` keep working (``python -m pipelines.face_synthesis ...`` and
imports); the code lives in :mod:`pipelines.face.synthesis`.
"""
import sys

from pipelines.face import synthesis as _target

if __name__ == "__main__":
    sys.exit(_target.main())

sys.modules[__name__] = _target  # one module under both names: same objects, same state
