"""Kept so that scripts using ``pipelines.digital_twin`` keep working (``python -m pipelines.digital_twin ...`` and
imports); the code lives in :mod:`pipelines.twin.pipeline`.
"""
import sys

from pipelines.twin import pipeline as _target

if __name__ == "__main__":
    sys.exit(_target.main())

sys.modules[__name__] = _target  # one module under both names: same objects, same state
