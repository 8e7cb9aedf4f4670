"""ONNX Runtime and OpenVINO sessions, their custom operators and derived graphs."""
