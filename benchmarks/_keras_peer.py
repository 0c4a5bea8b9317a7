"""Keras 3 peer, run as its own process: ``_keras_peer.py KIND DATA.npz EPOCHS SEED THREADS TARGET``.

Prints one JSON line: the record ``_peers.py`` documents, plus ``time_to_target_s`` when
TARGET > 0 (wall time from the start of ``fit`` until test accuracy first reaches TARGET,
checked after every epoch; training stops there).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main() -> None:
    kind, path, epochs, seed, threads, target = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        int(sys.argv[5]),
        float(sys.argv[6]),
    )
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(seed)
    with np.load(path) as d:  # plain arrays, allow_pickle stays False
        x, y, xt, yt = d["x"], d["y"], d["xt"], d["yt"]
    if kind == "mlp":
        layers = [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
        ]
    else:
        layers = [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
        ]
    model = keras.Sequential([*layers, keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self.reached: float | None = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter() - self.t0)
            if target > 0 and (logs or {}).get("val_accuracy", 0.0) >= target:
                self.reached = time.perf_counter() - started
                self.model.stop_training = True

    # Trace the train step first (10 steps) so the timed epochs measure training, not tracing.
    model.fit(x[:1280], y[:1280], batch_size=128, epochs=1, verbose=0)
    timer = Timer()
    started = time.perf_counter()
    val = (xt, yt) if target > 0 else None
    model.fit(x, y, batch_size=128, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer], validation_data=val)
    accuracy = float(model.evaluate(xt, yt, batch_size=1024, verbose=0)[1])
    epoch_s = min(timer.times)
    record = {
        "framework": f"Keras 3 ({keras.backend.backend()})",
        "samples_per_s": len(x) / epoch_s,
        "epoch_s": epoch_s,
        "accuracy": accuracy,
        "precision": "fp32",
        "time_to_target_s": timer.reached,
        "epochs_run": len(timer.times),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
