"""bench: reproducible comparative studies of GANs.

Importing bench pins the CPU numerics first (bench/numerics.py), before anything loads torch: the libraries under
torch read their settings once, when they load.
"""

from bench.numerics import pin_process

pin_process()
