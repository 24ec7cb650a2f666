"""The floor of serving this model over HTTP in Python: FastAPI + ONNX Runtime and nothing else.

bench_peers.py starts it with ``uvicorn minimal_server:app`` (uvloop and httptools, as
``champipy serve`` runs) on the model in CHAMPIPY_BENCH_MODEL_DIR. Same decode and
preprocessing as ChampiPy; no sign-in, cache, store, kept photos, logs or metrics: what is left
between it and raw ONNX Runtime is the HTTP stack, and between it and ChampiPy the product.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, UploadFile
from starlette.concurrency import run_in_threadpool

from champipy.images import decode_image
from champipy.model.classifier import Classifier

classifier = Classifier.load(os.environ["CHAMPIPY_BENCH_MODEL_DIR"])
app = FastAPI()


def top_three(data: bytes) -> list[dict]:
    image = decode_image(data, min_short_side=classifier.image_size).image
    probabilities = classifier.predict_batch(classifier.preprocess(image)[None])[0]
    return [
        {"species": classifier.labels[i], "probability": float(probabilities[i])}
        for i in probabilities.argsort()[::-1][:3]
    ]


@app.post("/predict")
async def predict(file: UploadFile) -> dict:
    return {"results": await run_in_threadpool(top_three, await file.read())}


@app.get("/ping")
def ping() -> str:
    return "ok"
