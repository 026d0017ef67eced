"""The classic engine's renderer, one concern per module.

- ``warp``: thin-plate-spline warping of an image region from moving control points (precomputed per photo).
- ``analysis``: what the renderer learns once per photo (landmark depth, person mask, blur, noise, colours).
- ``mouth``: lip shapes (visemes -> landmark motion) and the mouth interior (teeth, tongue, cavity).
- ``head``: the 2.5D head turn (rotation with the landmarks' depth) and the still background behind it.
- ``eyes``: blinks and small eye movements.
- ``rig``: one photo prepared for animation; renders a frame from a pose.
"""
