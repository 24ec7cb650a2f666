"""The species classifier: training (torch) and serving (ONNX Runtime, no torch) halves."""
