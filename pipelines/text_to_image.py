"""Kept so that scripts using ``pipelines.text_to_image`` keep working (``python -m pipelines.text_to_image ...`` and
imports); the code lives in :mod:`pipelines.image.text_to_image`.
"""
import sys

from pipelines.image import text_to_image as _target

if __name__ == "__main__":
    sys.exit(_target.main())

sys.modules[__name__] = _target  # one module under both names: same objects, same state
