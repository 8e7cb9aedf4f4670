"""AdaIN model files: one safetensors file holding the encoder (VGG19 to relu4_1, so a
model needs no separate VGG19 download) and the trained decoder, and a JSON sidecar.

Header metadata: ``format`` (:data:`ADAIN_FORMAT`), ``encoder_widths`` (the encoder's
conv widths, comma-separated), ``convention`` (the encoder weights' pixel convention,
JSON) and ``pooling``.
"""

from __future__ import annotations

import os

from styleforge.errors import StyleforgeError
from styleforge.nets.adain import ENCODER_LAST_CONV, AdaINNet, Decoder, encoder_widths
from styleforge.utils.state_dicts import load_checked_state
from styleforge.vgg.architecture import CONV_NAMES
from styleforge.vgg.preprocessing import Convention

ADAIN_FORMAT = "styleforge-adain"


def adain_header(net: AdaINNet) -> dict[str, str]:
    """The safetensors metadata that rebuilds ``net``'s layout (:func:`adain_from_state`)."""
    encoder = net.encoder
    return {"format": ADAIN_FORMAT, "encoder_widths": ",".join(str(w) for w in encoder.widths),
            "convention": encoder.convention.to_json(), "pooling": encoder.pooling}


def adain_from_state(file: str | os.PathLike[str], header: dict[str, str], state: object) -> AdaINNet:
    """The AdaIN network a model file's ``header`` (:func:`adain_header`) describes, holding ``state``.

    Raises:
        StyleforgeError: damaged metadata, or tensors that do not fit (one line naming the first).
    """
    from styleforge.vgg.network import VGG19

    try:
        widths = [int(w) for w in header["encoder_widths"].split(",")]
        convention = Convention.from_json(header["convention"])
        pooling = header.get("pooling", "max")
    except (KeyError, ValueError, TypeError) as exc:
        raise StyleforgeError(f"'{file}': damaged AdaIN model metadata ({exc.__class__.__name__}: {exc})") from None
    if len(widths) != CONV_NAMES.index(ENCODER_LAST_CONV) + 1 or min(widths) < 1:
        raise StyleforgeError(f"'{file}': the encoder must have the {CONV_NAMES.index(ENCODER_LAST_CONV) + 1} convolutions "
                              f"up to {ENCODER_LAST_CONV}, got widths {widths}")
    encoder = VGG19(widths, convention=convention, pooling=pooling)
    net = AdaINNet(encoder, Decoder(encoder_widths(encoder)))
    load_checked_state(net, state, file, "the AdaIN encoder and decoder")
    return net.eval().requires_grad_(False)


def is_adain_header(header: dict[str, str]) -> bool:
    """Whether safetensors metadata ``header`` is an AdaIN model's."""
    return header.get("format") == ADAIN_FORMAT

