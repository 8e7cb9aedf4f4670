"""The feed-forward style networks: the transform network, AdaIN, and their ONNX counterparts."""
