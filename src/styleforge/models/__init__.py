"""Every style-model file: reading it, writing it, and the installed ready-made styles.

* :mod:`.loading`: the one reading interface. :func:`~.loading.inspect_model` reads a
  :class:`~.loading.ModelInfo` from a file's header, and :func:`~.loading.load_network`
  gives its :class:`~.loading.StyleNetwork`, through one reader per format.
* :mod:`.option_rules`: which ``transfer`` options apply to which file, in one table.
* :mod:`.files`: the styleforge model file itself (safetensors and its JSON sidecar).
  :mod:`.checkpoint` is the training checkpoint.
* :mod:`.registry`, :mod:`.names`, :mod:`.store`: the community networks styleforge can
  download or import (mirror URLs, SHA-256, first-use install from a Python package),
  kept in ``<styleforge home>/models``, where ``transfer --model NAME`` and
  ``styleforge serve`` find them.
* ``formats/``: one converter per published layout (pytorch/examples, ONNX Model Zoo,
  Torch7, Magenta), plus the AdaIN model's encoder and decoder.
"""
