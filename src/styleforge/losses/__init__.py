"""Perceptual losses (content, Gram style, total variation) and their normalisation constants."""
