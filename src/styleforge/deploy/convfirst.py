r"""``use_convfirst``: fold the input normalisation into the first convolution.

For a graph whose input is :math:`x = (P - m) / s` per channel (:math:`P` the 0-255
pixels) and whose first layer is a convolution on that input, the convolution of
:math:`x` equals a convolution of :math:`P` with weights :math:`W_{oc} / s_c` and bias
:math:`b_o - \sum_{c,i,j} W_{ocij} m_c / s_c`. The folded graph takes raw 0-255 pixels,
so the normalisation costs nothing at run time and the first convolution's input
quantises over the pixels' own 0-255 range. The course's four conditions are checked:
the preprocessing is not in the graph, it has the form (x - mean) / std, the first layer
is a convolution on a 3-channel input, and mean/std/color_mode are given.

One difference remains: the convolution's zero padding now pads raw pixels with 0
rather than normalised ones (raw pixels equal to the mean), which changes the border
outputs of that one layer slightly (measured in the tests: within quantisation noise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from styleforge.errors import StyleforgeError

#: Metadata value recording that the graph takes raw 0-255 pixels (read by the runtime).
RAW_PIXELS = "raw-0-255"


def fold_input_normalization(model: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """Return ``model`` (an onnx ModelProto) with ``(P - mean) / std`` folded into its
    first convolution; refuses a graph that does not meet the course's conditions."""
    from onnx import numpy_helper

    graph = model.graph
    input_name = graph.input[0].name
    consumers = [n for n in graph.node if input_name in n.input]
    if len(consumers) != 1 or consumers[0].op_type != "Conv":
        kinds = ", ".join(n.op_type for n in consumers) or "nothing"
        raise StyleforgeError(f"use_convfirst: the graph's input feeds {kinds}, not one convolution (the preprocessing "
                              "may be inside the graph, as in style models); use_convfirst = False")
    conv = consumers[0]
    inits = {t.name: t for t in graph.initializer}
    weight = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
    if weight.shape[1] != 3:
        raise StyleforgeError(f"use_convfirst: the first convolution takes {weight.shape[1]} channels, not 3")
    bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 else np.zeros(weight.shape[0])
    m = np.broadcast_to(np.asarray(mean, dtype=np.float64), 3)
    s = np.broadcast_to(np.asarray(std, dtype=np.float64), 3)
    folded_weight = weight / s[None, :, None, None]
    folded_bias = bias - np.einsum("ocij,c->o", weight, m / s)
    inits[conv.input[1]].CopyFrom(numpy_helper.from_array(folded_weight.astype(np.float32), conv.input[1]))
    if len(conv.input) > 2:
        inits[conv.input[2]].CopyFrom(numpy_helper.from_array(folded_bias.astype(np.float32), conv.input[2]))
    else:
        name = f"{conv.name or 'conv'}_folded_bias"
        graph.initializer.append(numpy_helper.from_array(folded_bias.astype(np.float32), name))
        conv.input.append(name)
    return model
