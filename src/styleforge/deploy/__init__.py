"""Deployment: ONNX export of the transform network and the VGG19 classifier
(:mod:`~styleforge.deploy.export`) and ONNX Runtime behind styleforge's own model
interfaces (:mod:`~styleforge.nets.onnx`). Needs ``pip install 'styleforge[onnx]'``.
"""
