"""Video: decode a clip, stylise its frames in batches, optionally smooth them over time
with optical flow, and encode the result with the clip's frame timing and audio.

Modules: :mod:`~styleforge.video.io` (PyAV reading and atomic writing),
:mod:`~styleforge.video.flow` (DIS optical flow, warping, forward-backward consistency),
:mod:`~styleforge.video.temporal` (the smoother and the warping-error measure),
:mod:`~styleforge.video.transfer` (the whole job).
"""
