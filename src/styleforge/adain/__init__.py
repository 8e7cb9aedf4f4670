"""Arbitrary style transfer with adaptive instance normalisation (Huang & Belongie 2017):
VGG19 up to relu4_1 as a frozen encoder, AdaIN, and a trained decoder.

* :mod:`~styleforge.adain.network`: the AdaIN layer, statistics blending, the decoder, the
  network and the fixed-style stylizer ``transfer`` runs (tiles share whole-image statistics);
* :mod:`~styleforge.adain.files`: model files holding encoder and decoder;
* :mod:`~styleforge.adain.training`: ``styleforge train-adain`` on the shared training loop.

Export to ONNX (the style's statistics as graph inputs) is in :mod:`styleforge.deploy.export`.
"""
