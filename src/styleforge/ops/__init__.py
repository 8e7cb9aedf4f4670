"""styleforge's own operators (``torch.ops.styleforge.*``), native where a compiler is
available and in pure PyTorch otherwise. Importing this package registers them (and
builds the native library the first time: :mod:`styleforge.ops.native`)."""

from styleforge.ops.power_difference import CUDA_KERNEL, KERNEL, power_difference, reference_power_difference

__all__ = ["CUDA_KERNEL", "KERNEL", "power_difference", "reference_power_difference"]
