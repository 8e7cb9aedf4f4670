"""Blends of a model's styles, as ``--style-weights`` names them: one style by index or
name (``"2"``, ``"wave"``) or a weighted mix (``"0:0.5,wave:0.5"``). Read by ``transfer``
and ``export`` alike, for a multi-style model's built-in styles and for the ``--style``
paintings given to a model that takes any."""

from __future__ import annotations

from styleforge.config import is_finite
from styleforge.errors import StyleforgeError


def style_mix(spec: str, names: list[str], count: int, given: bool = False) -> list[float]:
    """Parse ``--style-weights``: ``"2"``, ``"wave"`` or ``"0:0.5,wave:0.5"`` into K weights
    (of a multi-style model's styles, or with ``given`` of the ``--style`` images given).

    Raises:
        StyleforgeError: an unknown name, an index out of range, or a malformed weight.
    """
    weights = [0.0] * count
    for item in (part.strip() for part in spec.split(",")):
        key, _, value = item.partition(":")
        key = key.strip()
        if key.isdigit():
            index = int(key)
            if index >= count:
                owner = f"{count} --style image(s) were given" if given else f"this model has {count} style(s)"
                raise StyleforgeError(f"style {index} is out of range: {owner}, 0-{count - 1}")
        elif key in names:
            index = names.index(key)
        else:
            where = "among the --style images:" if given else "in this model; its styles are"
            raise StyleforgeError(f"no style {key!r} {where} {', '.join(f'{i}:{n}' for i, n in enumerate(names))}")
        try:
            weights[index] += float(value) if value else 1.0
        except ValueError:
            raise StyleforgeError(f"style weight {value!r} in {spec!r} is not a number") from None
    if not all(is_finite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
        raise StyleforgeError(f"style weights {spec!r} must be numbers >= 0 with a positive sum")
    return weights
