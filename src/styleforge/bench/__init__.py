"""``styleforge bench``: one model timed in every runtime it can run in (PyTorch, its ONNX
export, the INT8 and INT16 quantisations, OpenVINO, CUDA), with each output's PSNR and
SSIM against PyTorch fp32. It sits above both :mod:`styleforge.transfer` and
:mod:`styleforge.deploy`, whose results it compares."""
