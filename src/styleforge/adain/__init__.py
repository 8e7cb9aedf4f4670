"""Arbitrary style transfer with adaptive instance normalisation (Huang & Belongie 2017):
VGG19 up to relu4_1 as a frozen encoder, AdaIN, and a trained decoder.

Built so far: the network (:mod:`~styleforge.adain.network`). Its training
(``styleforge train-adain``) and transfer path are issue 14's remaining work.
"""
