"""`bench sample TRIAL --out OUT`: images from a trained trial, through the method's own sampler.

TRIAL is a trial key (or a unique prefix) whose checkpoint is in the runs folder, or else in the MLflow records
(the `checkpoint/` artifact of the run tagged with that key). `--out x.png` (or .jpg, .webp, .bmp, .tif) writes a grid
in that format: one row per class for a conditional method (or per `--label`), a code traversal for InfoGAN
(`--traverse`), a style-mixing grid for StyleGAN (`--mix`); another image extension is refused; `--out DIR` writes
one PNG per image, named `<label>_<index>.png` for conditional methods. The same command with the same `--seed`
gives the same images.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from bench import numerics
from bench.devices import resolve
from bench.errors import BenchError
from bench.suite import Numerics

GRID_COLUMNS = 8
# the file formats of a grid (--out x.jpg): any other image extension is refused, never made a folder of PNGs
GRID_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                ".tiff": "TIFF"}
MAX_GRID = 4096  # images in one grid PNG (a 64-px grid of 4096 is 4096 x 4096 pixels)
MAX_FILES = 1_000_000  # images one call writes into a folder
CHUNK = 1024  # images generated at once for a folder: memory stays bounded whatever --n is


def sample_command(
    trial: str = typer.Argument(..., help="trial key or unique prefix (bench run SUITE --dry-run lists them)"),
    out: Path = typer.Option(..., "--out", help="x.png (or .jpg, .webp, .bmp, .tif) for a grid, or a folder for "
                                                "one PNG per image"),
    n: int = typer.Option(64, "--n", help="images (a grid: per class row, n / rows)"),
    label: list[str] = typer.Option([], "--label", help="class name or index (repeat for several rows)"),  # noqa: B006
    truncation: float | None = typer.Option(None, help="StyleGAN's psi in (0, 1]: 0.7 trades variety for quality"),
    traverse: str | None = typer.Option(None, help="InfoGAN: vary one code along each row (category, c1, c2)"),
    mix: bool = typer.Option(False, "--mix", help="StyleGAN: a style-mixing grid (coarse styles from the rows, "
                                                  "fine from the columns)"),
    seed: int = typer.Option(0, help="seed of the latents"),
    runs_dir: Path = typer.Option(Path("runs"), envvar="BENCH_RUNS", help="where `bench run` keeps checkpoints"),
    tracking_uri: str | None = typer.Option(None, envvar="MLFLOW_TRACKING_URI",
                                            help="MLflow store searched when the runs folder lacks the trial"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N"),
    input: Path | None = typer.Option(None, "--input", help="translation trials: a folder of images to translate"),
    direction: str = typer.Option("a2b", help="translation trials: a2b or b2a (CycleGAN has both)"),
) -> None:
    """Draw images from a trained trial: a grid (x.png) or one file per image (a folder); translate a folder
    (--input) with an image-to-image trial."""
    if n < 1:
        raise BenchError(f"--n {n}: draw at least one image")
    grid = _is_grid(out)
    wanted = n * max(len(label), 1)
    limit = MAX_GRID if grid else MAX_FILES
    if wanted > limit:
        what = (f"a grid holds at most {MAX_GRID:,} images (give a folder for more)" if limit == MAX_GRID else
                f"one call writes at most {MAX_FILES:,} images (FID's protocol is 50,000); call it again with "
                "another --seed and --out for more")
        raise BenchError(f"--n {n}{f' x {len(label)} labels' if label else ''}: {what}")
    dev = resolve(device)
    method, key, settings = _load(trial, runs_dir, tracking_uri, dev)
    with numerics.trial_numerics(settings, dev):  # the trial's kernels: its grids' images, bit for bit
        _draw(method, key, out, n, label, truncation, traverse, mix, seed, input, direction, grid)


def _draw(method, key: str, out: Path, n: int, label: list[str], truncation: float | None, traverse: str | None,
          mix: bool, seed: int, input: Path | None, direction: str, grid: bool) -> None:
    import torch

    if truncation is not None:
        if not hasattr(method, "truncation"):
            raise BenchError(f"--truncation: method '{method.name}' has no truncation (StyleGAN has)")
        if not 0 < truncation <= 1:
            raise BenchError(f"--truncation {truncation}: psi is in (0, 1]")
        method.truncation = truncation
    if getattr(method, "task", "generation") == "translation" or input is not None:
        _translate_folder(method, input, direction, out, seed, key)
        return
    labels = [_label(method, text) for text in label]
    rng = torch.Generator().manual_seed(seed)
    if grid:
        if mix:
            images, columns = _mixing(method, n, rng)
        elif traverse is not None:
            images, columns = _traversal(method, traverse, n, rng)
        else:
            images, columns = _grid(method, labels, n, rng)
        _write_grid(images, out, columns)
        typer.echo(f"wrote {out}: a grid of {images.shape[0]} images from trial {key}")
        return
    if mix or traverse is not None:
        raise BenchError("--mix and --traverse draw a grid: give --out a file name ending in .png or .jpg")
    written = 0
    for start, images, drawn in _plain(method, labels, n, rng):
        names = [f"{i:04d}" for i in range(start, start + len(images))] if drawn is None else [
            f"{_class_name(method, int(c))}_{i:04d}" for i, c in enumerate(drawn, start)]
        _write_files(images, out, names)
        written += len(images)
    typer.echo(f"wrote {written} PNGs into {out}/ from trial {key}")


def _translate_folder(method, folder: Path | None, direction: str, out: Path, seed: int, key: str) -> None:
    """Every image of `folder` (square-cropped and resized to the trial's resolution) through the trial's generator:
    a grid of input / output rows (x.png), or one PNG per input with its file name (a folder)."""
    import numpy as np
    import torch

    # loaded when a trial is sampled, not for every `bench` command
    from bench.data import uint8_to_unit
    from bench.data.folder import list_images, read_image

    if getattr(method, "task", "generation") != "translation":
        raise BenchError(f"--input: method '{method.name}' draws from noise; --input is for translation trials")
    if folder is None:
        raise BenchError(f"method '{method.name}' translates images: give --input DIR, a folder of images of its "
                         "source domain")
    if direction not in method.directions:
        raise BenchError(f"--direction {direction}: method '{method.name}' translates {', '.join(method.directions)}")
    if folder.is_file():
        raise BenchError(f"--input {folder}: is a file; give the folder that holds the images to translate")
    if not folder.is_dir():
        raise BenchError(f"--input {folder}: no such folder")
    mode = "L" if method.shape.channels == 1 else "RGB"
    read = [(p, read_image(p, method.shape.resolution, mode)) for p in list_images(folder)]
    read = [(p, a) for p, a in read if a is not None]
    if not read:
        raise BenchError(f"--input {folder}: no readable images in it")
    images = uint8_to_unit(torch.from_numpy(np.stack([a for _, a in read])).permute(0, 3, 1, 2))
    torch.manual_seed(seed)  # Pix2Pix's test-time dropout: the same seed, the same translations
    translated = method.translate(images, direction).cpu()
    if _is_grid(out):
        rows = []
        for start in range(0, len(images), GRID_COLUMNS):
            rows += [images[start:start + GRID_COLUMNS], translated[start:start + GRID_COLUMNS]]
        _write_grid(torch.cat(rows), out, GRID_COLUMNS)
        typer.echo(f"wrote {out}: {len(images)} inputs and their translations ({direction}), trial {key}")
        return
    _write_files(translated, out, [p.stem for p, _ in read])
    typer.echo(f"wrote {len(images)} translations ({direction}) into {out}/ from trial {key}")


def _load(key: str, runs_dir: Path, tracking_uri: str | None, device):
    """(method with trained networks, full trial key), from the runs folder or else from the MLflow records."""
    # loaded when a trial is sampled, not for every `bench` command
    from bench.checkpoint import CHECKPOINT_NAME, find_trial_dir, load, method_from_checkpoint
    from bench.tracking import DEFAULT_TRACKING_URI, reading

    try:
        folder = find_trial_dir(key, runs_dir)
    except BenchError:
        folder = None
    if folder is not None and (folder / CHECKPOINT_NAME).exists():
        path = folder / CHECKPOINT_NAME
    else:
        with reading(tracking_uri or DEFAULT_TRACKING_URI):
            path = _from_records(key, tracking_uri)
        if path is None:
            raise BenchError(f"no checkpoint of trial '{key}' under {runs_dir} nor in the MLflow store; pass "
                             "--runs-dir or --tracking-uri (`bench run SUITE --dry-run` lists trial keys)")
    ckpt = load(path, device)
    method, config = method_from_checkpoint(ckpt, device)
    step, total = ckpt.get("step"), ckpt.get("total_steps")
    if step is not None and total is not None and step < total:
        typer.echo(f"note: trial {ckpt['key']} is unfinished (interrupted or failed): these images come from its "
                   f"checkpoint at step {step} of {total}")
    return method, ckpt["key"], Numerics(**config.get("numerics", {}))


def _from_records(key: str, tracking_uri: str | None) -> Path | None:
    """The checkpoint artifact of the MLflow run tagged with this trial key (prefix), downloaded; None if none."""
    # loaded when a trial is sampled, not for every `bench` command
    from bench.tracking import DEFAULT_TRACKING_URI, sqlite_path

    uri = tracking_uri or DEFAULT_TRACKING_URI
    db = sqlite_path(uri)
    if db is not None and not db.expanduser().is_file():
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(experiments, filter_string=f"tags.`bench.trial_key` LIKE '{key}%'", max_results=50)
    keys = {r.data.tags["bench.trial_key"] for r in runs}
    if len(keys) > 1:
        raise BenchError(f"trial key '{key}' is ambiguous in {uri}: {', '.join(sorted(keys))}")
    for run in runs:
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
        if "checkpoint/checkpoint.pt" in artifacts:
            target = Path(tempfile.mkdtemp(prefix="bench-sample-"))
            return Path(client.download_artifacts(run.info.run_id, "checkpoint/checkpoint.pt", str(target)))
    return None


def _label(method, text: str) -> int:
    if not getattr(method, "conditional", False):
        raise BenchError(f"--label: method '{method.name}' is not conditional; it takes no labels")
    names = list(method.shape.classes)
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < method.shape.n_classes:
        return int(text)
    known = ", ".join(names) if names else f"0..{method.shape.n_classes - 1}"
    raise BenchError(f"--label {text}: not a class of this trial; classes: {known}")


def _grid(method, labels: list[int], n: int, rng):
    """A conditional method: one row per class (or per --label), n / rows images each, the same z down a column.
    Others: n images, 8 a row."""
    import torch

    if not getattr(method, "conditional", False):
        return method.sample(n, rng).cpu(), GRID_COLUMNS
    rows = labels or list(range(method.shape.n_classes))
    columns = max(1, n // len(rows))
    z = method.sample_latents(columns, rng)["z"]
    latents = {"z": z.repeat(len(rows), 1), "labels": torch.tensor(rows).repeat_interleave(columns)}
    return _generate(method, latents), columns


def _plain(method, labels: list[int], n: int, rng):
    """n images for a folder (with --label: n of each label), and the label of each image (None: unconditional), in
    chunks of CHUNK (one chunk up to CHUNK images: the same images as one draw)."""
    import torch

    wanted = torch.tensor(labels).repeat_interleave(n) if labels else None
    total = n if wanted is None else len(wanted)
    for start in range(0, total, CHUNK):
        part = None if wanted is None else wanted[start:start + CHUNK]
        latents = method.sample_latents(min(CHUNK, total - start), rng, labels=part)
        yield start, _generate(method, latents), latents.get("labels")


def _class_name(method, index: int) -> str:
    names = method.shape.classes
    return names[index] if index < len(names) else str(index)


def _traversal(method, code: str, n: int, rng):
    codes = method.codes()
    if not codes:
        raise BenchError(f"--traverse: method '{method.name}' has no latent codes to traverse (InfoGAN has)")
    if code not in codes:
        raise BenchError(f"--traverse {code}: unknown code; this trial's codes: {', '.join(codes)}")
    rows = max(1, n // GRID_COLUMNS)
    z = method.sample_latents(rows, rng)["z"]
    latents = method.traversal(code, z, GRID_COLUMNS)
    return _generate(method, latents), latents["z"].shape[0] // rows


def _mixing(method, n: int, rng):
    """Karras et al.'s figure 3: the top row and left column are the sources; inside, coarse styles (the first half
    of the layers) come from the row's source and the fine ones from the column's."""
    import torch

    if not hasattr(method, "mixed_ws"):
        raise BenchError(f"--mix: method '{method.name}' has no styles to mix (StyleGAN has)")
    side = max(2, min(8, int(n ** 0.5)))
    rows, columns = method.sample_latents(side - 1, rng), method.sample_latents(side - 1, rng)
    crossover = method.nets[method.eval_network].synthesis.num_ws // 2
    noise = rows["noise"][:1].repeat(side - 1, 1)
    blank = torch.ones(1, method.shape.channels, method.shape.resolution, method.shape.resolution)
    cells = [blank, _generate(method, {"z": columns["z"], "noise": noise})]
    for i in range(side - 1):
        source = rows["z"][i:i + 1]
        cells.append(_generate(method, {"z": source, "noise": noise[:1]}))
        with torch.no_grad(), method.eval_mode():
            ws = method.mixed_ws(source.to(method.device).repeat(side - 1, 1), columns["z"].to(method.device),
                                 crossover)
        cells.append(_generate(method, {"ws": ws, "noise": noise}))
    return torch.cat(cells), side


def _generate(method, latents):
    import torch

    with torch.no_grad(), method.eval_mode():
        return method.generate({k: v.to(method.device) for k, v in latents.items()}).float().cpu()


def _is_grid(out: Path) -> bool:
    """--out x.png (or .jpg, ...) is a grid file; a name without an image extension a folder of PNGs."""
    from PIL import Image

    suffix = out.suffix.lower()
    if suffix in GRID_FORMATS:
        return True
    if suffix in Image.registered_extensions():
        raise BenchError(f"--out {out}: a grid is written as {', '.join(GRID_FORMATS)}; give one of those, or a "
                         "folder name without an image extension for one PNG per image")
    return False


def _write_grid(images, out: Path, columns: int) -> None:
    # loaded when a trial is sampled, not for every `bench` command
    from bench.tracking import png_grid

    if out.exists() and out.is_dir():
        raise BenchError(f"--out {out}: is a folder; give a file name ending in .png for a grid")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png_grid(images.clamp(-1, 1), nrow=columns, image_format=GRID_FORMATS[out.suffix.lower()]))
    except OSError as err:
        raise BenchError(f"--out {out}: cannot write it ({err.strerror})") from None


def _write_files(images, out: Path, names: list[str]) -> None:
    from PIL import Image

    # loaded when a trial is sampled, not for every `bench` command
    from bench.metrics.features import to_uint8

    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file; give a folder (or a name ending in .png for a grid)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    for image, name in zip(to_uint8(images.clamp(-1, 1)).cpu(), names, strict=True):
        array = image.permute(1, 2, 0).numpy()
        try:
            Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(out / f"{name}.png")
        except OSError as err:
            raise BenchError(f"--out {out}: cannot write {name}.png ({err.strerror or err}); the images before it "
                             "are written") from None
