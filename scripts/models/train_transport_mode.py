#!/usr/bin/env python3
"""Trains the transport-mode example model and writes it with its fixtures.

Generates synthetic per-second GPS speed readings for three transport modes
(walking, cycling, driving), turns each 10-second window of one device into the
features [mean, max, std, count] of speed (std is the population std, 0 for a
single reading), trains a small RandomForestClassifier on them, converts it to
ONNX with skl2onnx and writes, under --out-dir (default: the repository root):

  functions/transport-mode/model.onnx             the classifier
                                                  (input `features` float [N, 4];
                                                   outputs `label` string [N],
                                                   `probabilities` float [N, 3])
  functions/transport-mode/sample.jsonl           sample input for local runs
                                                  (6 devices, one poison record)
  test/fixtures/models/transport-mode-expected.json
                                                  60 feature rows with sklearn's
                                                  labels and probabilities
  test/fixtures/models/two-inputs.onnx            tiny hand-built test models
  test/fixtures/models/fixed-batch.onnx

Everything is deterministic (fixed seeds, n_jobs=1, no clock): running it twice
gives byte-identical files, so a test can re-run it into a temporary directory
and compare the bytes with the committed ones. Pinned dependencies:
scripts/models/requirements.txt.

Usage: python scripts/models/train_transport_mode.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

REPO_ROOT = Path(__file__).resolve().parents[2]

MODEL_PATH = Path("functions/transport-mode/model.onnx")
SAMPLE_PATH = Path("functions/transport-mode/sample.jsonl")
EXPECTED_PATH = Path("test/fixtures/models/transport-mode-expected.json")
TWO_INPUTS_PATH = Path("test/fixtures/models/two-inputs.onnx")
FIXED_BATCH_PATH = Path("test/fixtures/models/fixed-batch.onnx")

MODES = ("walking", "cycling", "driving")
WINDOW_SECONDS = 10
DROPOUT = 0.1            # chance that one second has no reading
MAX_DROPS_PER_WINDOW = 5  # so an aligned 10-second window holds 5..10 readings

TRAIN_SEED = 20260101
FIXTURE_SEED = 20260202
SAMPLE_SEED = 20260303
FOREST_SEED = 7

TRAIN_TRACES_PER_MODE = 30
TRAIN_TRACE_SECONDS = 300
FIXTURE_ROWS_PER_MODE = 20

SAMPLE_START_MS = 1767225600000  # 2026-01-01T00:00:00Z, a multiple of 10 s
SAMPLE_SECONDS = 95
SAMPLE_DEVICES = (
    ("walk-1", "walking"),
    ("walk-2", "walking"),
    ("bike-1", "cycling"),
    ("bike-2", "cycling"),
    ("car-1", "driving"),
    ("car-2", "driving"),
)
POISON_DEVICE = "car-2"

OPSETS = {"": 17, "ai.onnx.ml": 3}
TEST_MODEL_OPSET = 17
TEST_MODEL_IR_VERSION = 8


# --------------------------------------------------------------------------
# Synthetic speed traces


def _ar1(n: int, rng: np.random.Generator, sd: float, phi: float) -> np.ndarray:
    """AR(1) noise with marginal standard deviation sd."""
    eps = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), size=n)
    out = np.empty(n)
    x = rng.normal(0.0, sd)
    for i in range(n):
        x = phi * x + eps[i]
        out[i] = x
    return out


def _walking(n: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.normal(1.4, 0.12)
    return base + _ar1(n, rng, 0.28, 0.5)


def _cycling(n: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.normal(5.0, 0.8)
    return base + _ar1(n, rng, 1.25, 0.7)


def _driving(n: int, rng: np.random.Generator) -> np.ndarray:
    """Cruising around ~13 m/s with large variance, stops (lights, traffic) and
    the accelerations and brakings around them."""
    out: list[float] = []
    v = float(rng.uniform(0.0, 15.0))
    moving = bool(rng.random() < 0.8)
    while len(out) < n:
        if moving:
            target = float(np.clip(rng.normal(13.0, 5.0), 4.0, 30.0))
            for _ in range(int(rng.integers(15, 90))):
                v += 0.25 * (target - v) + rng.normal(0.0, 1.5)
                v = max(v, 0.0)
                out.append(v)
            # brake to a stop
            while v > 1.0:
                v = max(v - rng.uniform(1.5, 4.0), 0.0)
                out.append(v)
        else:
            for _ in range(int(rng.integers(4, 40))):
                v = abs(rng.normal(0.0, 0.3))
                out.append(v)
        moving = not moving
    return np.asarray(out[:n])


_GENERATORS = {"walking": _walking, "cycling": _cycling, "driving": _driving}


def speed_trace(mode: str, n_seconds: int, rng: np.random.Generator) -> np.ndarray:
    """One device's speed for each second, in m/s with 2 decimals."""
    speeds = np.clip(_GENERATORS[mode](n_seconds, rng), 0.0, None)
    return np.round(speeds, 2)


def kept_seconds(n_seconds: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of the seconds that have a reading: ~10% dropouts, at most 5 in each
    aligned 10-second block."""
    keep = np.ones(n_seconds, dtype=bool)
    for start in range(0, n_seconds, WINDOW_SECONDS):
        dropped = np.flatnonzero(rng.random(min(WINDOW_SECONDS, n_seconds - start)) < DROPOUT)
        keep[start + dropped[:MAX_DROPS_PER_WINDOW]] = False
    return keep


def window_features(speeds) -> list[float]:
    """[mean, max, std (population), count] of one window's speeds."""
    values = [float(s) for s in speeds]
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / n) if n > 1 else 0.0
    return [mean, max(values), std, float(n)]


def windows_of(mode: str, n_seconds: int, rng: np.random.Generator) -> list[list[float]]:
    speeds = speed_trace(mode, n_seconds, rng)
    keep = kept_seconds(n_seconds, rng)
    rows = []
    for start in range(0, n_seconds - WINDOW_SECONDS + 1, WINDOW_SECONDS):
        window = speeds[start : start + WINDOW_SECONDS][keep[start : start + WINDOW_SECONDS]]
        rows.append(window_features(window))
    return rows


def dataset(seed: int, traces_per_mode: int, trace_seconds: int):
    rng = np.random.default_rng(seed)
    rows: list[list[float]] = []
    labels: list[str] = []
    for _ in range(traces_per_mode):
        for mode in MODES:
            w = windows_of(mode, trace_seconds, rng)
            rows.extend(w)
            labels.extend([mode] * len(w))
    return np.asarray(rows, dtype=np.float32), np.asarray(labels)


# --------------------------------------------------------------------------
# Outputs


def write_bytes(out_dir: Path, rel: Path, data: bytes) -> None:
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def model_bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString(deterministic=True)


def train():
    x, y = dataset(TRAIN_SEED, TRAIN_TRACES_PER_MODE, TRAIN_TRACE_SECONDS)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=FOREST_SEED, stratify=y
    )
    clf = RandomForestClassifier(
        n_estimators=25, max_depth=6, random_state=FOREST_SEED, n_jobs=1
    )
    clf.fit(x_train, y_train)
    accuracy = float(np.mean(clf.predict(x_test) == y_test))
    print(f"held-out accuracy: {accuracy:.4f} ({len(y_train)} train / {len(y_test)} test windows)")
    return clf, accuracy


def convert(clf: RandomForestClassifier) -> onnx.ModelProto:
    model = convert_sklearn(
        clf,
        name="transport_mode",
        initial_types=[("features", FloatTensorType([None, 4]))],
        options={id(clf): {"zipmap": False}},
        target_opset=dict(OPSETS),
    )
    # Outputs must be named exactly `label` and `probabilities`.
    wanted = ["label", "probabilities"]
    current = [o.name for o in model.graph.output]
    if current != wanted:
        renames = dict(zip(current, wanted))
        for node in model.graph.node:
            for i, name in enumerate(node.output):
                if name in renames:
                    node.output[i] = renames[name]
        for out in model.graph.output:
            out.name = renames[out.name]
    # skl2onnx can list the default domain twice; keep one entry per domain.
    opsets: dict[str, int] = {}
    for entry in model.opset_import:
        opsets[entry.domain] = max(opsets.get(entry.domain, 0), entry.version)
    del model.opset_import[:]
    for domain in sorted(opsets):
        model.opset_import.append(helper.make_opsetid(domain, opsets[domain]))
    model.doc_string = ""
    model.graph.doc_string = ""
    model.graph.name = "transport_mode"
    onnx.checker.check_model(model)
    return model


def expected_fixture(clf: RandomForestClassifier) -> str:
    rng = np.random.default_rng(FIXTURE_SEED)
    rows: list[list[float]] = []
    per_mode = {m: [] for m in MODES}
    for mode in MODES:
        while len(per_mode[mode]) < FIXTURE_ROWS_PER_MODE:
            per_mode[mode].extend(windows_of(mode, 60, rng))
    for i in range(FIXTURE_ROWS_PER_MODE):  # interleave the modes
        for mode in MODES:
            rows.append(per_mode[mode][i])
    x = np.asarray(rows, dtype=np.float32)
    labels = [str(v) for v in clf.predict(x)]
    proba = clf.predict_proba(x)
    lines = ["{"]
    lines.append(f'  "classes": {json.dumps([str(c) for c in clf.classes_])},')
    lines.append('  "rows": [')
    lines.append(",\n".join("    " + json.dumps([float(v) for v in row]) for row in x))
    lines.append("  ],")
    lines.append(f'  "labels": {json.dumps(labels)},')
    lines.append('  "probabilities": [')
    lines.append(",\n".join("    " + json.dumps([float(p) for p in row]) for row in proba))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def sample_jsonl() -> str:
    rng = np.random.default_rng(SAMPLE_SEED)
    records = []  # (timestamp, device, speed)
    poison_ts = None
    for device, mode in SAMPLE_DEVICES:
        speeds = speed_trace(mode, SAMPLE_SECONDS, rng)
        keep = kept_seconds(SAMPLE_SECONDS, rng)
        offsets = rng.integers(0, 1000, size=SAMPLE_SECONDS)
        for s in range(SAMPLE_SECONDS):
            ts = SAMPLE_START_MS + s * 1000 + int(offsets[s])
            if keep[s]:
                records.append((ts, device, float(speeds[s])))
            elif device == POISON_DEVICE and poison_ts is None and s >= SAMPLE_SECONDS // 2:
                # the poison record takes the place of a dropped reading
                poison_ts = ts
    if poison_ts is None:  # no dropout in the second half: squeeze it in anyway
        poison_ts = SAMPLE_START_MS + (SAMPLE_SECONDS // 2) * 1000 + 500
    records.append((poison_ts, POISON_DEVICE, "fast"))
    records.sort(key=lambda r: (r[0], r[1]))
    lines = []
    for ts, device, speed in records:
        value = {"device": device, "speed": speed if isinstance(speed, str) else round(speed, 2)}
        lines.append(json.dumps({"key": device, "value": value, "timestamp": ts}))
    return "\n".join(lines) + "\n"


def two_inputs_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    n = helper.make_tensor_value_info("n", TensorProto.INT64, ["N", 1])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"])
    doubled = helper.make_tensor_value_info("doubled", TensorProto.INT64, ["N", 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    two = helper.make_tensor("two", TensorProto.INT64, [], [2])
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["total"], name="sum", keepdims=0),
        helper.make_node("Mul", ["n", "two"], ["doubled"], name="double"),
    ]
    graph = helper.make_graph(nodes, "two_inputs", [x, n], [total, doubled], initializer=[axes, two])
    return _test_model(graph)


def fixed_batch_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="sum", keepdims=1)]
    graph = helper.make_graph(nodes, "fixed_batch", [x], [y], initializer=[axes])
    return _test_model(graph)


def _test_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", TEST_MODEL_OPSET)],
        ir_version=TEST_MODEL_IR_VERSION,
        producer_name="sluice-test-fixtures",
    )
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=REPO_ROOT,
        help="directory to write the outputs under (default: the repository root)",
    )
    args = parser.parse_args()
    out_dir: Path = args.out_dir.resolve()

    clf, accuracy = train()
    model = model_bytes(convert(clf))
    write_bytes(out_dir, MODEL_PATH, model)
    write_bytes(out_dir, EXPECTED_PATH, expected_fixture(clf).encode())
    write_bytes(out_dir, SAMPLE_PATH, sample_jsonl().encode())
    write_bytes(out_dir, TWO_INPUTS_PATH, model_bytes(two_inputs_model()))
    write_bytes(out_dir, FIXED_BATCH_PATH, model_bytes(fixed_batch_model()))

    print(json.dumps({
        "accuracy": round(accuracy, 4),
        "model_bytes": len(model),
        "classes": [str(c) for c in clf.classes_],
        "out_dir": os.fspath(out_dir),
    }))


if __name__ == "__main__":
    main()
