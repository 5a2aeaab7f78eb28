"""Tiny ONNX damage models made at run time, for tests and benchmarks (nothing is shipped).

Each writes an ``.onnx`` file that follows the contract of :mod:`damage.io.model` (or breaks it
on purpose) and returns its path. They need the ``onnx`` package (``pip install onnx``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["constant_model", "difference_model", "tile_mean_model", "conv_model", "broken_model"]

#: The ONNX operator set the models use (ReduceMean takes its axes as an input from 18 on).
OPSET = 18


def _save(nodes: list, inputs: list, outputs: list, inits: list, path: str | Path) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, Path(path).stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def _io(bands: Any = "bands", size: Any = "H", channels: int = 1, names: tuple[str, str] = ("before", "after"),
        rank: int = 4) -> tuple[list, list]:
    from onnx import TensorProto, helper

    shape: list[Any] = ["N", bands, size, size][:rank] if size != "H" else ["N", bands, "H", "W"][:rank]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names]
    out_shape: list[Any] = ["N", channels, size, size] if size != "H" else ["N", channels, "H", "W"]
    return ins, [helper.make_tensor_value_info("damage", TensorProto.FLOAT, out_shape)]


def _const(name: str, value: Any, dtype: Any = np.float32) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype), name)


def constant_model(path: str | Path, value: float = 0.25, bands: int | str = "bands") -> Path:
    """Every pixel's damage is ``value`` (the inputs are read, and multiplied by 0)."""
    from onnx import helper

    ins, outs = _io(bands)
    nodes = [helper.make_node("Mul", ["before", "zero"], ["z"]),
             helper.make_node("ReduceMean", ["z", "axes"], ["m"], keepdims=1),
             helper.make_node("Add", ["m", "value"], ["damage"])]
    return _save(nodes, ins, outs, [_const("zero", 0.0), _const("value", value), _const("axes", [1], np.int64)], path)


def difference_model(path: str | Path, gain: float = 1.0) -> Path:
    """A pixel's damage is ``gain`` times the mean over bands of ``|after - before|``, clipped to [0, 1]."""
    from onnx import helper

    ins, outs = _io()
    nodes = [helper.make_node("Sub", ["after", "before"], ["d"]),
             helper.make_node("Abs", ["d"], ["ad"]),
             helper.make_node("ReduceMean", ["ad", "axes"], ["m"], keepdims=1),
             helper.make_node("Mul", ["m", "gain"], ["g"]),
             helper.make_node("Clip", ["g", "lo", "hi"], ["damage"])]
    inits = [_const("axes", [1], np.int64), _const("gain", gain), _const("lo", 0.0), _const("hi", 1.0)]
    return _save(nodes, ins, outs, inits, path)


def tile_mean_model(path: str | Path) -> Path:
    """Every pixel of a tile gets the tile's mean ``|after - before|``: the most non-local model there is
    (its values depend on where the tiles lie, so it shows whether they lie on the grid's lattice)."""
    from onnx import helper

    ins, outs = _io()
    nodes = [helper.make_node("Sub", ["after", "before"], ["d"]),
             helper.make_node("Abs", ["d"], ["ad"]),
             helper.make_node("ReduceMean", ["ad", "all"], ["m"], keepdims=1),  # N x 1 x 1 x 1
             helper.make_node("ReduceMean", ["before", "axes"], ["shape_of"], keepdims=1),  # N x 1 x H x W
             helper.make_node("Mul", ["shape_of", "zero"], ["z"]),
             helper.make_node("Add", ["z", "m"], ["damage"])]
    inits = [_const("all", [1, 2, 3], np.int64), _const("axes", [1], np.int64), _const("zero", 0.0)]
    return _save(nodes, ins, outs, inits, path)


def conv_model(path: str | Path, bands: int = 3, width: int = 16, layers: int = 3, seed: int = 0,
               tile: int | None = None) -> Path:
    """A small Siamese-style convolutional network with random weights (a stand-in for a real one's cost):
    both epochs and their difference, ``layers`` 3 x 3 convolutions of ``width`` channels, a sigmoid."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    ins, outs = _io(bands, tile if tile is not None else "H")
    nodes = [helper.make_node("Sub", ["after", "before"], ["d"]),
             helper.make_node("Concat", ["before", "after", "d"], ["x0"], axis=1)]
    inits, c_in, x = [], 3 * bands, "x0"
    for k in range(layers):
        c_out = width if k < layers - 1 else 1
        w = rng.normal(0, (2.0 / (9 * c_in)) ** 0.5, (c_out, c_in, 3, 3)).astype(np.float32)
        inits += [_const(f"w{k}", w), _const(f"b{k}", np.zeros(c_out, np.float32))]
        nodes.append(helper.make_node("Conv", [x, f"w{k}", f"b{k}"], [f"c{k}"], pads=[1, 1, 1, 1]))
        x = f"c{k}"
        if k < layers - 1:
            nodes.append(helper.make_node("Relu", [x], [f"r{k}"]))
            x = f"r{k}"
        c_in = c_out
    nodes.append(helper.make_node("Sigmoid", [x], ["damage"]))
    return _save(nodes, ins, outs, inits, path)


def broken_model(path: str | Path, how: str) -> Path:
    """A model that breaks the contract: ``how`` is "names" (inputs called ``x`` and ``y``), "rank"
    (inputs of rank 3), "range" (outputs up to 2) or "channels" (two output channels, unnamed)."""
    from onnx import helper

    if how == "names":
        ins, outs = _io(names=("x", "y"))
        nodes = [helper.make_node("Sub", ["y", "x"], ["d"]), helper.make_node("ReduceMean", ["d", "axes"], ["damage"], keepdims=1)]
        return _save(nodes, ins, outs, [_const("axes", [1], np.int64)], path)
    if how == "rank":
        ins, outs = _io(rank=3)
        nodes = [helper.make_node("Sub", ["after", "before"], ["damage"])]
        return _save(nodes, ins, outs, [], path)
    if how == "range":
        ins, outs = _io()
        nodes = [helper.make_node("ReduceMean", ["before", "axes"], ["m"], keepdims=1),
                 helper.make_node("Mul", ["m", "zero"], ["z"]), helper.make_node("Add", ["z", "two"], ["damage"])]
        return _save(nodes, ins, outs, [_const("axes", [1], np.int64), _const("zero", 0.0), _const("two", 2.0)], path)
    if how == "channels":
        ins, outs = _io(channels=2)
        nodes = [helper.make_node("Sub", ["after", "before"], ["d"]), helper.make_node("Abs", ["d"], ["a"]),
                 helper.make_node("Slice", ["a", "s", "e", "ax"], ["damage"])]
        inits = [_const("s", [0], np.int64), _const("e", [2], np.int64), _const("ax", [1], np.int64)]
        return _save(nodes, ins, outs, inits, path)
    raise ValueError(f"unknown way to break a model: {how!r}")
