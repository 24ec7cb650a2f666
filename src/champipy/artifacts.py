"""The names of a model's files and of the folders they are logged under in a training run.

Shared by the training side (``model/``: export, pipeline), the serving side
(``model/classifier.py``) and the registry, which copies them in and out of MLflow, so that
none of them has to import another for a file name. Plain constants: no torch, no mlflow.
"""

from __future__ import annotations

# A serving model is a folder holding these two files.
MODEL_FILE = "model.onnx"  # the ONNX graph, calibrated probabilities out
META_FILE = "champipy_model.json"  # labels, image size, preprocessing, training facts

# The torch weights a later fine-tune starts from (``TrainedModel.weights()``, torch.save'd).
WEIGHTS_FILE = "weights.pt"

# Artifact folders of a training run: the registered version's source is its serving folder.
SERVING_ARTIFACTS = "serving"
WEIGHTS_ARTIFACTS = "torch"
