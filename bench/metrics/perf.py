"""`bench perf fid`: throughput of bench's FID path beside clean-fid's own `compute_fid`, and what the cache saves.

Both sides compute FID between the same two folders of PNGs (digits at the quickstart's 16 px) with the same network:
clean-fid's `compute_fid` gets bench's Inception as `custom_feat_extractor` (left alone, it would download the same
network from the internet). The cache figures time the real-set statistics a suite of K trials needs: computed by
every trial (K x one measured cold computation) versus computed once and read back by the other K - 1.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer


def _write_digits(folder: Path, split: str, n: int, resolution: int) -> None:
    from PIL import Image

    # the metric machinery (torch, the Inception net) loads when the benchmark runs
    from bench.data import load_dataset
    from bench.metrics.features import to_uint8

    folder.mkdir(parents=True)
    images = to_uint8(load_dataset("digits", resolution, split).images[:n])
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:05d}.png")


def _clean_fid_extractor(net, mode: str):
    import torch

    def extract(batch: torch.Tensor) -> torch.Tensor:  # clean-fid hands over 0..255 floats
        with torch.inference_mode():
            if mode == "legacy_tensorflow":  # clean-fid leaves the resize to the network in this mode
                # the metric machinery (torch, the Inception net) loads when the benchmark runs
                from bench.metrics.features import prepare

                batch = prepare(batch, mode)
            return net((batch - 128) / 128)

    return extract


def perf_fid_command(
    n: int = typer.Option(100, help="images per folder (reference and evaluated)"),
    trials: int = typer.Option(5, help="K: trials in the simulated suite"),
    batch_size: int = typer.Option(50, help="images per Inception batch"),
    mode: str = typer.Option("clean", help="clean or legacy_tensorflow"),
    device: str = typer.Option("auto", help="auto, cpu, cuda"),
    resolution: int = typer.Option(16, help="resolution the digits are written at"),
) -> None:
    """Images/s of bench's FID path and of clean-fid's compute_fid, and suite time on real statistics with/without
    the cache."""
    import torch

    # the metric machinery (torch, the Inception net) loads when the benchmark runs
    from bench.devices import resolve
    from bench.metrics.base import Reference
    from bench.metrics.evaluate import evaluate_images
    from bench.metrics.features import FeatureExtractor, check_mode
    from bench.metrics.inception import load_feature_network
    from bench.metrics.reference import reference_stats

    check_mode(mode)
    dev = resolve(device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_digits(root / "real", "train", n, resolution)
        _write_digits(root / "fake", "test", n, resolution)
        start = time.perf_counter()
        net, sha = load_feature_network(dev)
        load_s = time.perf_counter() - start
        with torch.inference_mode():  # TorchScript profiles its first calls: keep that out of the timings
            net(torch.zeros(2, 3, 299, 299, device=dev))
            net(torch.zeros(2, 3, 299, 299, device=dev))
        reference = Reference(f"folder:{root / 'real'}")
        extractor = FeatureExtractor(net, mode, dev)

        def stats_seconds() -> float:
            start = time.perf_counter()
            reference_stats(reference, mode, extractor, sha, batch_size, root / "cache")
            return time.perf_counter() - start

        miss_s, hit_s = stats_seconds(), stats_seconds()
        start = time.perf_counter()
        ours = evaluate_images(root / "fake", reference, mode=mode, device=dev, batch_size=batch_size,
                               cache_dir=root / "cache")
        fake_s = time.perf_counter() - start
        bench_s = miss_s + fake_s

        from cleanfid import fid as clean_fid

        start = time.perf_counter()
        theirs = clean_fid.compute_fid(str(root / "real"), str(root / "fake"), mode=mode, num_workers=0,
                                       batch_size=batch_size, device=dev, verbose=False, use_dataparallel=False,
                                       custom_feat_extractor=_clean_fid_extractor(net, mode))
        clean_s = time.perf_counter() - start

    n_real, n_fake = int(ours.protocol["n_real"]), int(ours.protocol["n_fake"])
    say = typer.echo
    say(f"bench perf fid: {n_real} vs {n_fake} digits PNGs at {resolution} px, mode {mode}, batch {batch_size}, "
        f"{dev}, {torch.get_num_threads()} torch threads")
    say(f"Inception weights: load + sha256 check {load_s:.2f} s (sha256 {sha[:12]}...)")
    say(f"{'':34}{'images/s':>10}{'seconds':>10}{'FID':>12}")
    say(f"{'bench evaluate_images':34}{(n_real + n_fake) / bench_s:>10.2f}{bench_s:>10.1f}{ours.values['fid']:>12.4f}")
    say(f"{'clean-fid compute_fid':34}{(n_real + n_fake) / clean_s:>10.2f}{clean_s:>10.1f}{theirs:>12.4f}")
    gap = abs(ours.values["fid"] - theirs)
    say(f"|FID difference|: {gap:.2e} ({gap / max(abs(theirs), 1e-12):.1e} relative; bench feeds the network "
        "channels_last on the CPU, clean-fid NCHW)")
    say(f"real-set statistics ({n_real} images) for a suite of {trials} trials:")
    say(f"  without cache: {trials} x {miss_s:.1f} s = {trials * miss_s:.1f} s  (every trial extracts them)")
    say(f"  with cache:    {miss_s:.1f} s + {trials - 1} x {hit_s:.3f} s = {miss_s + (trials - 1) * hit_s:.1f} s  "
        "(first trial computes, the rest read the .npz)")
