"""DINOv2 (Oquab et al. 2023) as a feature space, from a local file of its weights: `dinov2:PATH`.

The architecture is timm's (`vit_<size>_patch14[_reg4]_dinov2`, always built with pretrained=False: nothing is
fetched at run time); the weights are the user's file, Meta's original checkpoint (dinov2_vits14_pretrain.pth ...) or
timm's conversion (.safetensors), read by timm's own key conversion. The size follows from the file (embedding width,
depth, registers). Features: the CLS token after the final norm, on images resized to 224x224 (bicubic, antialiased)
and scaled by ImageNet's mean and std, the protocol of Stein et al. 2023 (dgm-eval), who found DINOv2's space to rank
generative models closer to human judgement than Inception's.

A metric in another network's space is another number: a file whose sha256 is not an official checkpoint's is
refused unless the user says the weights are their own (`--own-weights`, `eval.features_own_weights: true`), and the
record then says `own`. OFFICIAL_SHA256 holds the hashes bench could verify; Meta publishes none beside its files and
none could be checked offline when this was written, so it is empty and every file needs the override until a hash
is added here from a verified download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.errors import BenchError

# sha256 -> checkpoint name, e.g. "dinov2_vitb14_pretrain.pth"; only hashes of files verified against Meta's download
OFFICIAL_SHA256: dict[str, str] = {}
INPUT_SIZE = 224
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's
SIZES = {384: "small", 768: "base", 1024: "large", 1536: "giant"}  # embedding width -> DINOv2's model size
HEAD_WIDTH = 64  # every DINOv2 ViT has 64-wide attention heads (S: 6, B: 12, L: 16, g: 24)
PREPROCESSING = "224px bicubic antialias, ImageNet mean/std, CLS token"


def official_name(sha256: str) -> str | None:
    return OFFICIAL_SHA256.get(sha256)


def preprocess(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 1 or 3, H, W) -> float (B, 3, 224, 224), ImageNet-normalised."""
    if batch.shape[1] not in (1, 3):
        raise BenchError(f"images have {batch.shape[1]} channels; DINOv2 takes grey (1) or RGB (3) images")
    x = batch.float().div(255.0).expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True,
                          align_corners=False).clamp(0, 1)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ClsFeatures(torch.nn.Module):
    """The ViT's CLS token after its final norm (DINOv2's x_norm_clstoken)."""

    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_features(x)[:, 0]


@dataclass
class LoadedViT:
    net: ClsFeatures
    architecture: str
    feature_dim: int


def _read(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # timm's own format, a dependency of timm

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a foreign pickle, a truncated file: which file, in one line
        raise BenchError(f"dinov2:{path}: not a DINOv2 weights file ({type(err).__name__}); give Meta's "
                         "dinov2_vit*14_pretrain.pth or timm's model.safetensors") from None
    for key in ("model", "state_dict", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or "cls_token" not in state or "patch_embed.proj.weight" not in state:
        raise BenchError(f"dinov2:{path}: no ViT weights in it (no cls_token, patch_embed); give Meta's "
                         "dinov2_vit*14_pretrain.pth or timm's model.safetensors")
    return state


def load_vit(path: Path, device="cpu") -> LoadedViT:
    """timm's DINOv2 ViT at 224 px with the file's weights, in eval mode."""
    import timm  # the architecture: loaded only for this space
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = _read(path)
    width = state["cls_token"].shape[-1]
    depth = len({m.group(1) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    patch = state["patch_embed.proj.weight"].shape[-1]
    registers = "register_tokens" in state or "reg_token" in state
    size = SIZES.get(width)
    name = f"vit_{size or 'small'}_patch14{'_reg4' if registers else ''}_dinov2"
    shape = {} if size else {"embed_dim": width, "depth": depth, "num_heads": max(1, width // HEAD_WIDTH),
                             "patch_size": patch}  # a size DINOv2 does not publish (a test's tiny ViT)
    vit = timm.create_model(name, pretrained=False, img_size=INPUT_SIZE, num_classes=0, **shape)
    try:
        vit.load_state_dict(checkpoint_filter_fn(dict(state), vit), strict=True)
    except (RuntimeError, KeyError, ValueError) as err:
        first = str(err).splitlines()[0][:200]
        raise BenchError(f"dinov2:{path}: the weights do not fit timm's {name} ({first})") from None
    architecture = name if size else f"{name}(embed_dim={width},depth={depth},patch={patch})"
    return LoadedViT(ClsFeatures(vit).to(device).eval(), architecture, width)
