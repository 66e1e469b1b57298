"""Build the tiny experts behind a `rich` progress bar (used by `dmoe experts build` and `dmoe localnet`)."""

from __future__ import annotations

from pathlib import Path

from subnet.engine.experts import build_tiny_experts


def build_with_bar(out_dir: Path, size: str = "default") -> dict[str, Path]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(domain: str, step: int, total: int, loss: float) -> None:
            if domain not in tasks:
                tasks[domain] = bar.add_task(f"training {domain} expert", total=total, loss=0.0)
            bar.update(tasks[domain], completed=step, loss=loss)

        return build_tiny_experts(out_dir, size=size, progress=progress)
