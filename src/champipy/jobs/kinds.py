"""Every kind of background job, by the name stored with each job and shown to Bob."""

from __future__ import annotations

from enum import StrEnum

DEFAULT_QUEUE_NAME = "champipy"  # several deployments sharing one Redis pick their own


class JobKind(StrEnum):
    IMPORT = "import"  # a folder of labelled photos into the store
    FETCH = "fetch"  # photos of named species from Mushroom Observer
    FINETUNE = "finetune"  # from a registered version, on the most recent stored images
    RETRAIN = "retrain"  # the default recipe from ImageNet weights
    MONITOR = "monitor"  # the periodic check
