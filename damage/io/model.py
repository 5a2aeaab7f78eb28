"""A learned damage model brought by the user: an ONNX file, checked against the contract, run on tiles.

The contract (``docs/model.md``):

- inputs named ``before`` and ``after``, float32, ``N x bands x H x W``, each epoch's bands mapped
  to [0, 1] by the scene's robust range (the after epoch registered and normalised to the before);
- one output, ``N x 1 x H x W`` (the probability of damage of each pixel) or ``N x C x H x W``
  (one channel per damage class, named by the side-car's ``classes``), values in [0, 1];
- H and W static (the model's tile) or dynamic (``Config.model_tile`` is used);
- beside it, optionally, a side-car ``<name>.json``: ``{"cuts": [minor, major, destroyed],
  "scale": "xbd", "classes": [...]}``, the probabilities where the xBD grades begin and the
  output channels' names.

This module is the only code that opens the model file; :mod:`damage.optical.learned` tiles
and blends, with the session's ``run`` passed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from damage.errors import InputNotFoundError, MissingDependencyError, ModelError

__all__ = ["LearnedModel", "load_model", "DAMAGED_CLASSES"]

#: Output channels whose probabilities add up to a pixel's damage (major damage or worse).
DAMAGED_CLASSES = ("major-damage", "destroyed")

_LOADED: dict[tuple[str, int, int], LearnedModel] = {}


@dataclasses.dataclass(frozen=True)
class LearnedModel:
    """An ONNX damage model, checked against the contract (:func:`load_model`).

    Attributes
    ----------
    path, sha256 : str
        The file and the SHA-256 of its bytes.
    bands : int or None
        The bands the model takes (None: any).
    tile : tuple of int or None
        Its static ``(H, W)``, or None when dynamic.
    batch : int or None
        Its static N, or None when dynamic.
    channels : int or None
        Output channels (None: not declared; checked on the first run).
    classes : tuple of str or None
        The output channels' names (the side-car's ``classes``).
    cuts : tuple of float or None
        Where minor, major damage and destroyed begin on ``p_damaged`` (the side-car's), else None.
    sidecar : str or None
        The side-car file read.
    """

    path: str
    sha256: str
    bands: int | None
    tile: tuple[int, int] | None
    batch: int | None
    channels: int | None
    classes: tuple[str, ...] | None
    cuts: tuple[float, float, float] | None
    sidecar: str | None
    session: Any = dataclasses.field(repr=False, compare=False)

    def damage(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Run the model on ``N x bands x H x W`` float32 tiles: each pixel's probability of damage, ``N x H x W``.

        One channel is that probability; with several, the channels named in :data:`DAMAGED_CLASSES` are added.

        Raises
        ------
        ModelError
            The model failed, or its output is not ``N x C x H x W`` in [0, 1].
        """
        n, _, h, w = before.shape
        try:
            (out,) = self.session.run(None, {"before": before, "after": after})
        except Exception as exc:  # onnxruntime's own errors: one line naming the model
            raise ModelError(f"{self.path}: the model failed on tiles of {n} x {before.shape[1]} x {h} x {w} "
                             f"({str(exc).splitlines()[0][:200]})") from None
        out = np.asarray(out)
        if out.ndim != 4 or out.shape[0] != n or out.shape[2:] != (h, w):
            raise ModelError(f"{self.path}: output of shape {list(out.shape)} for input {list(before.shape)}; "
                             f"the contract is N x C x H x W with the input's N, H and W")
        c = out.shape[1]
        if c > 1 and self.classes is None:
            raise ModelError(f"{self.path}: {c} output channels; name them in the side-car's 'classes' "
                             f"(for example {json.dumps(['no-damage', 'minor-damage', 'major-damage', 'destroyed'])})")
        if self.classes is not None and len(self.classes) != c:
            raise ModelError(f"{self.path}: {c} output channels but the side-car names {len(self.classes)} classes")
        finite = np.isfinite(out)
        if not finite.all() or out.min() < -1e-3 or out.max() > 1 + 1e-3:
            raise ModelError(f"{self.path}: output values outside [0, 1] (from {np.nanmin(out):.3g} to {np.nanmax(out):.3g}); "
                             "end the model with a sigmoid or a softmax")
        if c == 1:
            return np.clip(out[:, 0], 0.0, 1.0).astype(np.float32)
        take = [i for i, name in enumerate(self.classes or ()) if name in DAMAGED_CLASSES]
        return np.clip(out[:, take].sum(axis=1), 0.0, 1.0).astype(np.float32)

    def layout(self, tile: int, overlap: int) -> tuple[tuple[int, int], int]:
        """The tile it runs on (its static size, else ``tile`` square) and the overlap between tiles (at most a
        quarter of the tile's side, so that a small static tile still has a core of its own)."""
        size = self.tile or (tile, tile)
        return size, min(overlap, min(size) // 4)

    def record(self, tile: tuple[int, int], overlap: int) -> dict[str, Any]:
        """The run record's part: the file, its SHA-256 and the layout it was run with."""
        return {"path": self.path, "sha256": self.sha256, "inputs": ["before", "after"],
                "layout": "N x bands x H x W, float32, bands in [0, 1] by the scene's robust range",
                "bands": self.bands, "tile": list(tile), "overlap": overlap, "static_tile": self.tile is not None,
                "output_channels": self.channels, "classes": list(self.classes) if self.classes else None,
                "cuts": list(self.cuts) if self.cuts else None, "sidecar": self.sidecar}


def _dims(shape: list[Any]) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _sidecar(path: Path) -> tuple[tuple[str, ...] | None, tuple[float, float, float] | None, str | None]:
    side = path.with_suffix(".json")
    if not side.exists():
        return None, None, None
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{side}: not a readable side-car ({exc})") from None
    if not isinstance(doc, dict):
        raise ModelError(f"{side}: a side-car is a JSON object with 'cuts', 'scale' and 'classes'")
    unknown = sorted(set(doc) - {"cuts", "scale", "classes", "description"})
    if unknown:
        raise ModelError(f"{side}: unknown key(s) {unknown}; a side-car has 'cuts', 'scale', 'classes' and 'description'")
    if doc.get("scale", "xbd") != "xbd":
        raise ModelError(f"{side}: scale {doc['scale']!r}: the cuts are on the xBD scale (minor, major, destroyed); "
                         "say 'xbd' and grade on another scale with --scale")
    cuts = doc.get("cuts")
    if cuts is not None:
        ok = (isinstance(cuts, list) and len(cuts) == 3 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in cuts)
              and 0.0 < cuts[0] < cuts[1] < cuts[2] < 1.0)
        if not ok:
            raise ModelError(f"{side}: 'cuts' must be three increasing probabilities in (0, 1) "
                             f"(where minor damage, major damage and destroyed begin), got {cuts!r}")
        cuts = tuple(float(v) for v in cuts)
    classes = doc.get("classes")
    if classes is not None:
        if not (isinstance(classes, list) and classes and all(isinstance(v, str) for v in classes)):
            raise ModelError(f"{side}: 'classes' must be a list of the output channels' names, got {classes!r}")
        if not set(classes) & set(DAMAGED_CLASSES):
            raise ModelError(f"{side}: 'classes' {classes} names none of {list(DAMAGED_CLASSES)}, "
                             "the channels a pixel's damage is read from")
        classes = tuple(classes)
    return classes, cuts, str(side)


def load_model(path: str | os.PathLike, bands: int | None = None) -> LearnedModel:
    """Open an ONNX damage model and check it against the contract (once per process and file).

    Parameters
    ----------
    path : path
        The ``.onnx`` file (and its side-car ``<name>.json`` if there is one).
    bands : int, optional
        The epochs' band count, checked against the model's when it declares one.

    Raises
    ------
    MissingDependencyError
        onnxruntime is not installed (``pip install 'damage-assess[model]'``).
    InputNotFoundError, ModelError
        No such file, or a model that breaks the contract; the message names the file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise InputNotFoundError(f"{p}: no such model file") from None
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    model = _LOADED.get(key)
    if model is None:
        model = _open(p)
        _LOADED.clear()  # one model per process is what a run uses
        _LOADED[key] = model
    if bands is not None and model.bands is not None and model.bands != bands:
        raise ModelError(f"{p}: the model takes {model.bands} band(s) per epoch; the imagery has {bands}")
    return model


def _open(p: Path) -> LearnedModel:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("a learned model needs onnxruntime: pip install 'damage-assess[model]'") from None
    data = p.read_bytes()
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the run's own messages say what matters
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{p}: not an ONNX model onnxruntime can run ({str(exc).splitlines()[0][:200]})") from None
    inputs = {i.name: i for i in session.get_inputs()}
    if set(inputs) != {"before", "after"}:
        raise ModelError(f"{p}: inputs {sorted(inputs)}; the contract is two inputs named 'before' and 'after'")
    shapes = {}
    for name, i in inputs.items():
        if i.type != "tensor(float)":
            raise ModelError(f"{p}: input {name!r} is {i.type}; the contract is float32 (tensor(float))")
        if len(i.shape) != 4:
            raise ModelError(f"{p}: input {name!r} has rank {len(i.shape)} ({i.shape}); the contract is N x bands x H x W")
        shapes[name] = _dims(i.shape)
    if shapes["before"] != shapes["after"]:
        raise ModelError(f"{p}: inputs 'before' {shapes['before']} and 'after' {shapes['after']} differ in shape")
    outputs = session.get_outputs()
    if len(outputs) != 1:
        raise ModelError(f"{p}: {len(outputs)} outputs; the contract is one, N x C x H x W")
    if len(outputs[0].shape) != 4:
        raise ModelError(f"{p}: output of rank {len(outputs[0].shape)} ({outputs[0].shape}); the contract is N x C x H x W")
    n, bands, h, w = shapes["before"]
    channels = _dims(outputs[0].shape)[1]
    classes, cuts, side = _sidecar(p)
    if channels is not None and classes is not None and channels != len(classes):
        raise ModelError(f"{p}: {channels} output channels but the side-car names {len(classes)} classes")
    if channels is not None and channels > 1 and classes is None:
        raise ModelError(f"{p}: {channels} output channels; name them in a side-car {p.with_suffix('.json').name} "
                         "('classes')")
    tile = (h, w) if h is not None and w is not None else None
    return LearnedModel(str(p), hashlib.sha256(data).hexdigest(), bands, tile, n, channels, classes, cuts, side, session)
