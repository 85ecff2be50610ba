"""Did the GAN copy its training set? Generated images against the training images, with held-out real images (the
test split) as the yardstick: a generator that returns (lightly perturbed) training images sits closer to them than
new images of the same kind do; one that makes new images sits as close as the held-out ones.

In a feature space (Inception's, or any bench computes) and in pixel space (images brought to 32x32 RGB in [0, 1]):

- nearest-neighbour distances to the training set: the median for the generated images and for the held-out ones,
  and their ratio (`nn_ratio`, `nn_ratio_pixel`: well below 1 for copies, ~1 for new images of the same kind);
- C_T (Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to Detect Data-Copying in Generative Models",
  AISTATS; their data_copying_tests.py): the space is cut into cells by k-means on the training set (after PCA to 64
  dimensions, as dgm-eval prepares it); in each cell a Mann-Whitney U test compares the generated and the held-out
  images' distances to the cell's nearest training image, Z-scored; C_T is the mean of the cells' Z weighted by the
  held-out images' share of each cell, over the cells with at least MIN_PER_CELL generated images (the paper's
  tau = 20 / m at its m = 10,000; at the few hundred images of a small dataset 20 per cell would leave no cell).
  C_T << 0: the generated images are closer to the training set than new images are (data copying); ~0: as close;
  >> 0: farther (underfitting, which is no copying).
- the verdict: `copies` when C_T is below COPIES in either space, `novel` when it is above NOVEL in both, else
  `uncertain`; without held-out images C_T cannot be computed and the verdict is `uncertain`, with the distances
  and AuthPct for the user to read.

Cells: k = the held-out count / 20, at most 50 (the paper's 50 on MNIST's 10,000 test images), at least 1; a cell
without held-out images is left out (the weights are the held-out shares). The k-means and the PCA are seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from bench.metrics.authenticity import authpct
from bench.metrics.neighbours import nearest

PIXELS = 32  # pixel space: images resized to PIXELS x PIXELS, RGB, in [0, 1]
PCA_DIM = 64
MAX_CELLS = 50
TEST_PER_CELL = 20
MIN_PER_CELL = 10  # generated images a cell needs to count in C_T (the U test's normal approximation holds there)
COPIES, NOVEL = -3.0, -1.0  # C_T below COPIES: copies; above NOVEL in every space: novel
VERDICTS = ("copies", "novel", "uncertain")


def pixel_vectors(batch: torch.Tensor) -> np.ndarray:
    """uint8 (N, 1 or 3, H, W) -> float32 (N, 3 * PIXELS**2): RGB in [0, 1], resized with antialiasing."""
    x = batch.float().div(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (PIXELS, PIXELS):
        x = F.interpolate(x, size=(PIXELS, PIXELS), mode="bilinear", antialias=True, align_corners=False)
    return x.reshape(x.shape[0], -1).numpy().astype(np.float32)


@dataclass
class SpaceResult:
    """One space's figures: nearest-neighbour distances to the training set, and C_T where held-out images exist."""

    generated_median: float
    heldout_median: float | None = None
    ct: float | None = None
    cells: int = 0  # cells of the partition holding held-out images
    cells_used: int = 0  # of those, the ones with at least MIN_PER_CELL generated images
    nearest_train: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    distances: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    why_no_ct: str = ""
    copying: CopyingCells | None = field(default=None, repr=False)  # C_T's per-image scores, for resamples

    @property
    def ratio(self) -> float | None:
        if self.heldout_median is None or self.heldout_median == 0:
            return None
        return self.generated_median / self.heldout_median


def nn_distances(points: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist, index = nearest(points, train)
    return dist.numpy(), index.numpy()


def mann_whitney_z(generated: np.ndarray, heldout: np.ndarray) -> float:
    """Meehan et al.'s Z_U: U counts the (generated, held-out) pairs whose generated distance is the larger (ties
    half), Z-scored under the null that both come from one distribution, with their continuity correction."""
    from scipy.stats import mannwhitneyu  # scipy's U for the first sample, as the reference code takes it

    m, n = len(generated), len(heldout)
    u = mannwhitneyu(generated, heldout, alternative="less").statistic
    return float((u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12))


@dataclass
class CopyingCells:
    """What C_T is made of, per generated image: its cell and its U score there (the held-out images of the cell
    nearer to their nearest training image than it is to its own, ties half). A resample of the generated images
    (eval.bootstrap) weighs these scores by how often it draws each image: its C_T needs no distance again."""

    cell: np.ndarray  # (n_generated,) k-means cell; -1 for a cell without held-out images
    score: np.ndarray  # (n_generated,) U's count for the image against its cell's held-out images
    heldout: dict[int, int]  # cell -> held-out images in it (the occupied cells)

    def ct(self, counts: np.ndarray) -> np.ndarray:
        """C_T of each row of `counts` ((B, n_generated) draws of each generated image; ones: the sample itself);
        NaN where no cell holds MIN_PER_CELL drawn images."""
        counts = np.atleast_2d(counts)
        total, weight = np.zeros(len(counts)), np.zeros(len(counts))
        for cell, n in self.heldout.items():
            mine = self.cell == cell
            m = counts[:, mine].sum(1)
            u = counts[:, mine] @ self.score[mine]
            used = m >= MIN_PER_CELL
            with np.errstate(invalid="ignore", divide="ignore"):
                z = (u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12)
            total += np.where(used, n * z, 0.0)
            weight += np.where(used, n, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight > 0, total / np.maximum(weight, 1), np.nan)


def data_copying(train: np.ndarray, heldout: np.ndarray, generated: np.ndarray, seed: int = 0) \
        -> tuple[float | None, int, int, str, CopyingCells]:
    """(C_T or None, cells with held-out images, cells used, why C_T is missing, the cells' scores)."""
    from sklearn.cluster import KMeans  # scikit-learn's seeded k-means and PCA, as the reference code
    from sklearn.decomposition import PCA

    if train.shape[1] > PCA_DIM and len(train) > PCA_DIM:
        pca = PCA(PCA_DIM, svd_solver="full").fit(train)
        train, heldout, generated = pca.transform(train), pca.transform(heldout), pca.transform(generated)
    k = max(1, min(MAX_CELLS, len(heldout) // TEST_PER_CELL, len(train)))
    cells = KMeans(k, n_init=10, random_state=seed).fit(train)
    train_cell, heldout_cell, generated_cell = cells.labels_, cells.predict(heldout), cells.predict(generated)
    copying = CopyingCells(np.full(len(generated), -1), np.zeros(len(generated)), {})
    weights, scores = [], []
    for cell in range(k):
        held = heldout[heldout_cell == cell]
        if not len(held):
            continue
        copying.heldout[cell] = len(held)
        mine = generated_cell == cell
        if not mine.any():
            continue
        reference = train[train_cell == cell]
        gen_dist, held_dist = nn_distances(generated[mine], reference)[0], nn_distances(held, reference)[0]
        copying.cell[mine] = cell
        copying.score[mine] = u_counts(gen_dist, held_dist)
        if mine.sum() >= MIN_PER_CELL:
            scores.append(mann_whitney_z(gen_dist, held_dist))
            weights.append(len(held))
    occupied = len(copying.heldout)
    if not scores:
        return None, occupied, 0, (f"no cell of the {occupied} holds {MIN_PER_CELL} generated images: give more "
                                   "generated images"), copying
    return float(np.dot(weights, scores) / np.sum(weights)), occupied, len(scores), "", copying


def u_counts(generated: np.ndarray, heldout: np.ndarray) -> np.ndarray:
    """Each generated distance's share of Mann-Whitney's U: the held-out distances below it, ties counting half
    (their sum over the generated images is scipy's U for the generated sample)."""
    ordered = np.sort(heldout)
    below = np.searchsorted(ordered, generated, side="left")
    return below + 0.5 * (np.searchsorted(ordered, generated, side="right") - below)


def space(train: np.ndarray, heldout: np.ndarray | None, generated: np.ndarray) -> SpaceResult:
    dist, index = nn_distances(generated, train)
    result = SpaceResult(float(np.median(dist)), nearest_train=index, distances=dist)
    if heldout is None:
        result.why_no_ct = "no held-out images (--test): C_T compares against them"
        return result
    result.heldout_median = float(np.median(nn_distances(heldout, train)[0]))
    result.ct, result.cells, result.cells_used, result.why_no_ct, result.copying = data_copying(train, heldout,
                                                                                               generated)
    return result


def verdict(spaces: list[SpaceResult]) -> str:
    cts = [s.ct for s in spaces]
    if any(ct is not None and ct < COPIES for ct in cts):
        return "copies"
    if cts and all(ct is not None and ct > NOVEL for ct in cts):
        return "novel"
    return "uncertain"


@dataclass
class Memorization:
    features: SpaceResult
    pixels: SpaceResult
    authpct: float | None
    verdict: str

    def values(self) -> dict[str, float]:
        """The numbers a trial logs (those that could be computed)."""
        out = {"nn_ratio": self.features.ratio, "nn_ratio_pixel": self.pixels.ratio, "ct": self.features.ct,
               "ct_pixel": self.pixels.ct}
        return {k: float(v) for k, v in out.items() if v is not None}

    @property
    def suspect(self) -> SpaceResult:
        """The space whose C_T is lower (the one closer to calling it copying); feature space when neither has C_T."""
        scored = [s for s in (self.features, self.pixels) if s.ct is not None]
        return min(scored, key=lambda s: s.ct) if scored else self.features

    def closest(self, k: int = 8) -> list[tuple[int, int, float]]:
        """(generated index, its nearest training image's index, distance) of the k generated images nearest to a
        training image, in the suspect space: what a copy would look like, to see with one's own eyes."""
        space = self.suspect
        order = np.argsort(space.distances, kind="stable")[:k]
        return [(int(i), int(space.nearest_train[i]), float(space.distances[i])) for i in order]

    def pairs(self, generated_pixels: np.ndarray, train_pixels: np.ndarray, k: int = 8) -> torch.Tensor:
        """The closest pairs as images in [-1, 1] for a grid of k columns: generated on top, training below."""
        closest = self.closest(k)
        rows = [generated_pixels[g] for g, _, _ in closest] + [train_pixels[t] for _, t, _ in closest]
        return torch.from_numpy(np.stack(rows)).reshape(-1, 3, PIXELS, PIXELS) * 2 - 1


def memorization(train_feats: np.ndarray, gen_feats: np.ndarray, train_pixels: np.ndarray,
                 gen_pixels: np.ndarray, heldout_feats: np.ndarray | None = None,
                 heldout_pixels: np.ndarray | None = None) -> Memorization:
    features = space(train_feats, heldout_feats, gen_feats)
    pixels = space(train_pixels, heldout_pixels, gen_pixels)
    share = authpct(train_feats, gen_feats) if len(train_feats) >= 2 else None
    return Memorization(features, pixels, share, verdict([features, pixels]))


def score_memorization(s) -> None:
    """The per-trial check (eval.metrics: [memorization]) on a bench.metrics.base.Scoring: the generated images
    against the whole training split, with the dataset's test split held out."""
    if s.train is None:
        s.unavailable["memorization"] = f"the memorisation check needs the training images: {s.why_no_train}"
        return
    heldout = s.heldout.feats if s.heldout is not None else None
    result = memorization(s.train.feats, s.fake.feats, s.train_pixels, s.fake_pixels, heldout, s.heldout_pixels)
    s.values.update(result.values())
    s.copying = {"ct": result.features.copying, "ct_pixel": result.pixels.copying}  # for eval.bootstrap
    s.images["memorization/closest.png"] = result.pairs(s.fake_pixels, s.train_pixels)
    s.protocol.update(memorization_verdict=result.verdict, memorization_pixels=f"{PIXELS}x{PIXELS} rgb",
                      memorization_cells=str(result.features.cells), memorization_min_per_cell=str(MIN_PER_CELL),
                      memorization_n_train=str(len(s.train_pixels)))
    if heldout is None:
        s.unavailable["memorization"] = f"C_T and nn_ratio need held-out images: {s.why_no_heldout}"
    else:
        s.protocol["memorization_n_heldout"] = str(len(heldout))
        for name, space in (("ct", result.features), ("ct_pixel", result.pixels)):
            if space.ct is None:
                s.unavailable[name] = space.why_no_ct
