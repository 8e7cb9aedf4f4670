"""Deployment, the write side: verified ONNX export of the style networks and the VGG19
classifier (:mod:`~styleforge.deploy.export`), INT8/INT16 quantisation
(:mod:`~styleforge.deploy.quantize`), graph rewrites and ``bench``. The exported files
are read back through :mod:`styleforge.models.loading` and run by
:mod:`styleforge.runtime`. Needs ``pip install 'styleforge[onnx]'``.
"""
