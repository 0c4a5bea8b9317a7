"""``modelyard.explain(ref, inputs, ...)`` and ``Explainer``: which inputs drove an output.

    import modelyard
    e = modelyard.explain("fashion-mlp:1", images[:1])              # integrated gradients
    e.save_heatmap("why.png", scale=8)
    modelyard.explain("wine:2", rows, method="shap").top_features()

The CLI (`modelyard explain`) and the server's explain routes are thin layers over
``Explainer.explain``, so the same request gives the same attributions everywhere.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError, field_validator

from modelyard._validation import StrictModel, spec_error_from
from modelyard.compression.dequantize import dequantized_network
from modelyard.compression.loading import compression_info
from modelyard.compression.quantize import is_quantized
from modelyard.errors import SpecError, optional_dependency
from modelyard.explaining.background import given_sample, training_sample
from modelyard.explaining.heatmap import image_geometry
from modelyard.explaining.methods import Settings, get_method
from modelyard.explaining.problem import Problem, check_deadline
from modelyard.explaining.result import Explanation
from modelyard.nn import build_model
from modelyard.predict import Predictor

__all__ = ["explain", "Explainer", "ExplainOptions"]


class ExplainOptions(StrictModel):
    """The request options, validated once for the Python API, the CLI and HTTP."""

    method: str = "integrated_gradients"
    target: int | str | None = None
    # strict: "10" or true is refused (422), not read as 10 or 1
    steps: int = Field(50, ge=1, le=10_000, strict=True, description="integration points for integrated gradients")
    top: int = Field(10, ge=1, le=10_000, strict=True, description="features listed in top_features")

    @field_validator("target", mode="before")
    @classmethod
    def _index_or_name(cls, value: Any) -> Any:
        if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"expected an output index or a class name, received {value!r}")

    @classmethod
    def make(cls, **values: Any) -> ExplainOptions:
        try:
            return cls(**values)
        except ValidationError as exc:
            error = spec_error_from(exc)
            if error.field == "spec":  # an unknown option: no field path to name
                raise SpecError(
                    error.message.replace("Invalid value for `spec`", "Invalid explain options"), field="options"
                ) from None
            raise error from None


class Explainer:
    """One loaded model version ready to explain; keeps its SHAP/LIME background sample."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self._background: np.ndarray | None = None
        self._background_lock = threading.Lock()
        self._float_twin: Predictor | None = None  # an int8 version's dequantized network, built on first use
        self._float_lock = threading.Lock()

    @classmethod
    def load(cls, ref: str, *, home: str | Path | None = None) -> Explainer:
        return cls(Predictor.load(ref, home=home))

    @property
    def image(self) -> tuple[int, int, int] | None:
        """(C, H, W) when the model was trained on images, else None."""
        if self.predictor.meta.get("kind") != "image":
            return None
        return image_geometry(self.predictor.input_shape)

    def explain(
        self,
        inputs: Any,
        *,
        method: str = "integrated_gradients",
        target: int | str | None = None,
        steps: int = 50,
        top: int = 10,
        baseline: Any = None,
        background: Any = None,
        timeout_s: float | None = None,
    ) -> Explanation:
        """Attributions of ``inputs`` (raw samples, one or a batch) for the ``target`` output.

        ``target``: output index or class name; default the predicted class (classifiers)
        or output 0 (regression). ``baseline`` (integrated gradients): one raw sample or one
        number; default all zeros. ``background`` (shap, lime): raw reference rows; default a
        seeded sample of the model's training split. ``timeout_s``: the work stops at its next
        forward pass once this many seconds have passed (RequestTimeoutError).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        options = ExplainOptions.make(method=method, target=target, steps=steps, top=top)
        chosen = get_method(options.method)
        p = self.predictor
        if chosen.tabular_only and self.image is not None:
            raise SpecError(
                f"Invalid value for `method`: {chosen.name} explains tabular models, and {p.ref} takes "
                f"{'x'.join(map(str, self.image[1:]))} images; use integrated_gradients or saliency",
                field="method",
            )
        if self.text:
            return self._explain_text(inputs, options, chosen, baseline, deadline)
        problem = Problem.build(p, inputs, options.target, deadline=deadline)
        if chosen.gradients and problem.integer_inputs:
            raise SpecError(
                f"Invalid value for `method`: {chosen.name} differentiates the model's inputs, but {p.ref} "
                f"takes integer token ids; use shap or lime",
                field="method",
            )
        extra: dict[str, Any] = {}
        if chosen.gradients and is_quantized(p.network):
            problem, extra = self._through_dequantized(problem)
        settings = Settings(
            steps=options.steps,
            seed=p.spec.seed,
            baseline=_as_array(baseline, "baseline"),
            background=lambda: self._background_rows(background),
        )
        with optional_dependency("explain", f"Method {chosen.name}"):
            found = chosen.run(problem, settings)
        return Explanation(
            model=p.ref,
            method=chosen.name,
            task=p.task,
            inputs=problem.raw,
            attributions=self._layout(found.values),
            targets=problem.targets,
            labels=[_label(p, int(t), problem.outputs.shape[1]) for t in problem.targets],
            outputs=problem.target_outputs(),
            feature_names=self._feature_names(found.values.shape[1]),
            baseline_outputs=found.baseline_outputs,
            convergence_delta=found.convergence_delta,
            image=self.image,
            top=options.top,
            per_instance=found.per_instance,
            details={"summary": chosen.summary, **found.details, **extra},
        )

    @property
    def text(self) -> bool:
        """True when the model takes strings (a tokenize step makes its token ids)."""
        return self.predictor.pipeline.kind == "text"

    # -- helpers -----------------------------------------------------------------------------
    def _explain_text(
        self, inputs: Any, options: ExplainOptions, chosen: Any, baseline: Any, deadline: float | None
    ) -> Explanation:
        """Token attributions: integrated gradients over the token embedding layer (text.py)."""
        from modelyard.explaining.text import text_integrated_gradients

        p = self.predictor
        if chosen.name != "integrated_gradients":
            raise SpecError(
                f"Invalid value for `method`: {p.ref} takes text, which is explained with integrated_gradients "
                f"(token attributions over the embedding layer), received {chosen.name}",
                field="method",
            )
        if baseline is not None:
            raise SpecError(
                "Invalid value for `baseline`: a text model's baseline is fixed (every token replaced by the pad "
                "token), expected none",
                field="baseline",
            )
        network, extra = None, {}
        if is_quantized(p.network):
            network = self._dequantized().network
            extra = {
                "weights": "dequantized int8",
                "note": f"{p.ref} is quantized to int8, whose kernels have no gradients: attributions were "
                "computed on its dequantized float weights",
            }
        with optional_dependency("explain", f"Method {chosen.name}"):
            found = text_integrated_gradients(
                p,
                inputs,
                options.target,
                steps=options.steps,
                network=network,
                check_deadline=lambda: check_deadline(deadline),
            )
        k = found.outputs.shape[1]
        return Explanation(
            model=p.ref,
            method=chosen.name,
            task=p.task,
            inputs=found.texts,
            attributions=found.values,
            targets=found.targets,
            labels=[_label(p, int(t), k) for t in found.targets],
            outputs=found.outputs[np.arange(len(found.targets)), found.targets],
            feature_names=[f"token[{i}]" for i in range(found.values.shape[1])],
            baseline_outputs=found.baseline_outputs,
            convergence_delta=found.convergence_delta,
            top=options.top,
            tokens=found.tokens,
            details={
                "summary": "Captum layer integrated gradients over the token embeddings; attributions sum to "
                "f(x) - f(baseline)",
                "steps": options.steps,
                "integration": "gausslegendre",
                "layer": "token embedding",
                "baseline": "pad tokens (under the input's padding mask)",
                **extra,
            },
        )

    def _dequantized(self) -> Predictor:
        """The int8 version's float twin (its dequantized weights), built once."""
        p = self.predictor
        with self._float_lock:
            if self._float_twin is None:
                mode = ((compression_info(p.version) or {}).get("quantization") or {}).get("mode", "dynamic")
                fresh = build_model(p.spec.model, loss=p.spec.train.loss.type)
                network = dequantized_network(p.network, fresh, mode).to(p.device)
                self._float_twin = dataclasses.replace(p, network=network)
            return self._float_twin

    def _through_dequantized(self, problem: Problem) -> tuple[Problem, dict[str, Any]]:
        """An int8 version's problem moved onto its dequantized float twin (int8 kernels have no gradients).

        The explained outputs become the twin's (so attributions still sum to its f(x) - f(baseline));
        the targets stay the int8 model's predicted classes; the answer says so and how far apart they are.
        """
        p = self.predictor
        twin = self._dequantized()
        int8_outputs = problem.outputs
        moved = dataclasses.replace(problem, predictor=twin)
        moved.outputs = moved.evaluate(moved.flat_features())
        diff = float(np.abs(moved.outputs - int8_outputs).max(initial=0.0))
        note = (
            f"{p.ref} is quantized to int8, whose kernels have no gradients: attributions were computed on its "
            f"dequantized float weights (outputs within {diff:.3g} of the int8 model's on these inputs)"
        )
        return moved, {"weights": "dequantized int8", "dequantized_max_abs_diff": diff, "note": note}

    def _background_rows(self, given: Any) -> np.ndarray:
        if given is not None:
            return given_sample(self.predictor, _as_array(given, "background"), seed=self.predictor.spec.seed)
        with self._background_lock:  # loaded once per model, even with concurrent requests
            if self._background is None:
                self._background = training_sample(self.predictor)
            return self._background

    def _raw_size(self) -> int:
        return int(np.prod(self.predictor.input_shape))

    def _layout(self, values: np.ndarray) -> np.ndarray:
        """Model-input attributions in raw-input layout: the preprocessing steps are elementwise
        or reshapes, so model input i is raw feature i whenever the sizes agree."""
        if values.shape[1] == self._raw_size():
            return values.reshape(len(values), *self.predictor.input_shape)
        return values.reshape(len(values), *self.predictor.network.input_shape)

    def _feature_names(self, size: int) -> list[str]:
        names = self.predictor.meta.get("feature_names")
        if size != self._raw_size():
            return [f"input[{i}]" for i in range(size)]
        if names and len(names) == size:
            return [str(n) for n in names]
        if self.image is not None:
            channels, height, width = self.image
            return [
                f"pixel[{c},{r},{col}]" if channels > 1 else f"pixel[{r},{col}]"
                for c in range(channels)
                for r in range(height)
                for col in range(width)
            ]
        return [f"feature_{i}" for i in range(size)]


def _label(predictor: Predictor, target: int, outputs: int) -> Any:
    names = predictor.class_names if predictor.task == "classification" else None
    if names and len(names) == outputs:
        return names[target]
    if names and outputs == 1 and len(names) == 2:  # one sigmoid output: P(second class)
        return names[1]
    return target


def _as_array(value: Any, field: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise SpecError(
            f"Invalid value for `{field}`: expected numbers (one raw sample, rows, or one number), "
            f"received {type(value).__name__}",
            field=field,
        ) from None
    if not np.isfinite(arr).all():
        raise SpecError(
            f"Invalid value for `{field}`: expected finite numbers, received NaN or infinite values", field=field
        )
    return arr


def explain(
    ref: str | Predictor,
    inputs: Any,
    *,
    method: str = "integrated_gradients",
    target: int | str | None = None,
    steps: int = 50,
    top: int = 10,
    home: str | Path | None = None,
    baseline: Any = None,
    background: Any = None,
) -> Explanation:
    """Explain model ``ref`` ("name", "name:N" or a loaded Predictor) on raw ``inputs``.

    ``method``: integrated_gradients (default; alias ig), saliency, shap or lime; the other
    arguments as ``Explainer.explain``. Returns an ``Explanation`` (``to_dict()``,
    ``top_features()``, ``save_heatmap(path)``).
    """
    explainer = Explainer(ref) if isinstance(ref, Predictor) else Explainer.load(ref, home=home)
    return explainer.explain(
        inputs, method=method, target=target, steps=steps, top=top, baseline=baseline, background=background
    )
