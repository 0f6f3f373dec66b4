"""``uvrsep train``: train or fine-tune a VR-family model from separated tracks.

Exit codes: 0 trained (or already finished), 2 unusable settings or data. The output folder
holds ``checkpoint.pt`` (rerunning the same command resumes from it), ``model.pth`` +
``model.json`` (usable at once with ``uvrsep split -m OUT/model.pth``) and ``train_log.jsonl``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .train import TrainConfig

_DEFAULTS = TrainConfig()


def train_command(
    datasets: list[Path] = typer.Argument(..., metavar="DATASET", help="Folders of track folders (mixture/vocals/accompaniment files) or with mixtures/ + instrumentals/ sub-folders.", show_default=False),
    output_dir: Path = typer.Option(..., "-o", "--output-dir", help="Folder for the checkpoint, the exported model (model.pth + model.json) and the log; rerun to resume."),
    arch: str = typer.Option(_DEFAULTS.arch, "--arch", help="Net capacity: 33966, 123812, 31191, 537238, aspp_wW_bB_lL (custom CascadedASPPNet), lstm_NOUT_NOUTLSTM."),
    params: str = typer.Option(_DEFAULTS.params, "-p", "--params", help="Model-params name or JSON path (the analysis used for training and inference)."),
    primary_stem: str = typer.Option(_DEFAULTS.primary_stem, "--primary-stem", help="What the mask keeps: Instrumental or Vocals."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from this model (.pth or registry name): fine-tuning. Its architecture wins over --arch."),
    steps: int = typer.Option(_DEFAULTS.steps, "--steps", min=1, help="Optimisation steps."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this much training time (the learning rate anneals to it)."),
    batch_size: int = typer.Option(_DEFAULTS.batch_size, "-b", "--batch-size", min=1, help="Crops per step."),
    crop_frames: int = typer.Option(_DEFAULTS.crop_frames, "--crop-frames", min=16, help="Frames per crop (multiple of 16)."),
    lr: float = typer.Option(_DEFAULTS.learning_rate, "--lr", help="Peak learning rate (Adam)."),
    val_fraction: float = typer.Option(_DEFAULTS.val_fraction, "--val-fraction", help="Share of tracks held out for validation."),
    val_every: int = typer.Option(_DEFAULTS.val_every, "--val-every", min=1, help="Steps between validations."),
    checkpoint_every: int = typer.Option(_DEFAULTS.checkpoint_every, "--checkpoint-every", min=1, help="Steps between checkpoints and model exports."),
    seed: int = typer.Option(_DEFAULTS.seed, "--seed", help="Seed of every random choice."),
    mono_probability: float = typer.Option(_DEFAULTS.mono_probability, "--mono-probability", help="Chance that a training crop is made mono (both channels their mean), as old records and films are."),
    precision: str = typer.Option(_DEFAULTS.precision, "--precision", help="auto (bf16 autocast on CUDA, fp32 elsewhere), fp32 or bf16."),
    export_dtype: str = typer.Option(_DEFAULTS.export_dtype, "--export-dtype", help="fp16 (half the file size) or fp32."),
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    workers: int = typer.Option(max(1, (os.cpu_count() or 1)), "-j", "--workers", min=1, help="Processes analysing the audio."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from OUTPUT_DIR/checkpoint.pt when it exists (default), or start over."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars or messages."),
) -> None:
    """Train (or fine-tune) a VR model; the result works at once with `uvrsep split -m OUT/model.pth`."""
    from .train import train

    config = TrainConfig(
        arch=arch, params=params, primary_stem=primary_stem, steps=steps, batch_size=batch_size,
        crop_frames=crop_frames, learning_rate=lr, max_minutes=max_minutes, val_fraction=val_fraction,
        val_every=val_every, checkpoint_every=checkpoint_every, seed=seed, precision=precision,
        export_dtype=export_dtype, init=init, mono_probability=mono_probability,
    )
    show = not quiet and sys.stderr.isatty()

    def log(message: str) -> None:
        if not quiet:
            sys.stderr.write(message + "\n")

    summary = train(
        [str(p) for p in datasets], output_dir, config, device=device, workers=workers,
        resume=resume, progress=show, log=log,
    )
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    elif not quiet:
        val = summary["best_val_l1"]
        typer.echo(
            f"trained {summary['steps']} steps in {summary['train_seconds']:.0f} s; "
            f"train loss {summary['train_loss']:.4f}" + (f", best validation L1 {val:.4f}" if val is not None else "")
            + f"; model: {summary['model']}"
        )
