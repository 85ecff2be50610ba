"""bench: reproducible comparative studies of GANs.

Importing bench pins the CPU numerics' environment first (bench/numerics.py), before anything loads torch: the
libraries under torch read their settings once, when they load. It changes nothing else: torch is not loaded and
its settings stay torch's until a command of bench computes (`numerics.command_defaults`) or a trial runs.
"""

from bench.numerics import pin_process

pin_process()
