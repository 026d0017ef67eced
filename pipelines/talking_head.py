"""Kept so that code using ``pipelines.talking_head`` (``register_engine``, ``TalkingHeadEngine``...)
keeps working; the engine interface lives in :mod:`pipelines.twin.engines`.
"""
import sys

from pipelines.twin import engines as _target

sys.modules[__name__] = _target  # one module under both names: same objects, same state
