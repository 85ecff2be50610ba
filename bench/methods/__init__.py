"""GAN methods by name: `get_method("dcgan")`, `METHODS`. The interface and the registry are in bench/methods/base.py;
this file re-exports them and imports every method module so that each registers itself.

Adding a GAN is one module with a class decorated by `@register_method` and one line in the import below.
"""

# Methods register themselves on import.
from bench.methods import (  # noqa: F401
    biggan,
    conditional,
    cyclegan,
    dcgan,
    infogan,
    lsgan,
    pix2pix,
    sngan,
    stylegan,
    vanilla,
    wgan,
    wgan_gp,
)
from bench.methods.base import (
    ADDED,
    METHODS,
    DataShape,
    Hyper,
    Latents,
    Method,
    StepContext,
    added,
    get_method,
    identity_dump,
    identity_params,
    register_method,
)

__all__ = ["ADDED", "METHODS", "DataShape", "Hyper", "Latents", "Method", "StepContext", "added", "get_method",
           "identity_dump", "identity_params", "register_method"]
