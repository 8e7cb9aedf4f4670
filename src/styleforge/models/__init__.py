"""Ready-made style networks from the community, converted into styleforge models.

:mod:`.registry` lists the files styleforge can download (mirror URLs, SHA-256);
``formats/`` reads each published layout into :class:`~styleforge.nets.transform_net.TransformNet`
(:mod:`.formats.pytorch_examples`, :mod:`.formats.onnx_zoo`); :mod:`.store` keeps the
converted models in ``<styleforge home>/models``, where ``transfer --model NAME`` and
``styleforge serve`` find them.
"""
