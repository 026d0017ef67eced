"""Kept so that scripts using ``pipelines.face_landmarks`` keep working (``python -m pipelines.face_landmarks ...`` and
imports); the code lives in :mod:`pipelines.face.landmarks`.
"""
import sys

from pipelines.face import landmarks as _target

if __name__ == "__main__":
    sys.exit(_target.main())

sys.modules[__name__] = _target  # one module under both names: same objects, same state
