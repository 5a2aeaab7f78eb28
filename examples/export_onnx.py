"""Export a Siamese PyTorch damage model to the ONNX layout `damage --model` takes (docs/model.md).

    python examples/export_onnx.py weights.pt model.onnx [--classes 4]

Needs PyTorch (not a dependency of damage) and your own weights: none ship. Replace `Siamese`
with your network (an xView2 solution, a fine-tuned foundation-model head): what matters is the
wrapper's signature, `forward(before, after)` with each `N x bands x H x W` float32 in [0, 1],
returning `N x 1 x H x W` damage probabilities (or `N x C x H x W` class probabilities, named in
the side-car written beside the model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

CLASSES = ["no-damage", "minor-damage", "major-damage", "destroyed"]


class Siamese(nn.Module):
    """A stand-in for your network: one encoder for both epochs, a head on their features side by side."""

    def __init__(self, bands: int = 3, width: int = 32, classes: int = 1) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(bands, width, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, classes, 1))

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.encoder(before), self.encoder(after)], dim=1))


class ForDamage(nn.Module):
    """The contract's wrapper: inputs in [0, 1] as damage gives them; probabilities out.

    If your network was trained on other inputs (ImageNet statistics, 0-255), convert here.
    """

    def __init__(self, net: nn.Module, classes: int) -> None:
        super().__init__()
        self.net, self.classes = net, classes
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        logits = self.net((before - self.mean) / self.std, (after - self.mean) / self.std)
        return torch.sigmoid(logits) if self.classes == 1 else torch.softmax(logits, dim=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", help="a state_dict saved with torch.save")
    ap.add_argument("output", help="the .onnx file to write (a side-car .json is written beside it)")
    ap.add_argument("--classes", type=int, default=1, choices=(1, 4), help="1: damage probability; 4: xBD classes")
    ap.add_argument("--bands", type=int, default=3)
    args = ap.parse_args()
    net = Siamese(bands=args.bands, classes=args.classes)
    net.load_state_dict(torch.load(args.weights, map_location="cpu"))
    model = ForDamage(net, args.classes).eval()
    example = torch.rand(1, args.bands, 512, 512)
    dynamic = {"before": {0: "N", 2: "H", 3: "W"}, "after": {0: "N", 2: "H", 3: "W"}, "damage": {0: "N", 2: "H", 3: "W"}}
    torch.onnx.export(model, (example, example), args.output, input_names=["before", "after"], output_names=["damage"],
                      dynamic_axes=dynamic, opset_version=17)
    # where the grades begin on p_damaged: check them on labelled buildings of your own (damage validate)
    side = {"cuts": [0.3, 0.5, 0.8], "scale": "xbd", "description": "Siamese network exported by examples/export_onnx.py"}
    if args.classes > 1:
        side["classes"] = CLASSES
    Path(args.output).with_suffix(".json").write_text(json.dumps(side, indent=1))
    print(f"wrote {args.output} and {Path(args.output).with_suffix('.json')}")


if __name__ == "__main__":
    main()
