"""``fewgen bench draem-synth``: DRAEM anomaly synthesis throughput, beside anomalib's in the same run.

Both sides get the same job as the peer script in ``shared/peers/anomalib_perlin.py``:
N random images of SIZE x SIZE, every image given an anomaly (probability 1), Perlin
noise (or a texture folder) as the source; timed after a warm-up call, synthesis only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click

DEFAULT_PEER_PYTHON = Path(os.environ.get("PEERS_DIR", "/tmp/fewgen-peers")) / "anomalib-venv" / "bin" / "python"


def _fewgen_images_per_second(n: int, size: int, batch: int, device: str, textures: Path | None) -> dict[str, float]:
    import torch

    from fewgen.imageio import IMAGE_SUFFIXES, load_rgb
    from fewgen_draem.synthesis import AnomalySynthesizer

    synthesizer = AnomalySynthesizer(normal_share=0.0)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, size, size, generator=generator).to(device)
    sources = None
    if textures is not None:
        files = sorted(p for p in textures.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise click.BadParameter(f"no images in {textures}", param_hint="--textures")
        loaded = [torch.from_numpy(load_rgb(p).copy()).permute(2, 0, 1).float() / 255 for p in files]
        sources = [loaded[i % len(loaded)].to(device) for i in range(n)]
    synthesizer(images[:2], generator, sources[:2] if sources else None)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    masked = 0.0
    for start in range(0, n, batch):
        part = synthesizer(
            images[start : start + batch], generator, sources[start : start + batch] if sources else None
        )
        masked += float(part.masks.sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"images_per_s": n / seconds, "seconds": seconds, "mask_fraction": masked / (n * size * size)}


@click.command("draem-synth")
@click.option("--size", type=int, default=256, show_default=True, help="Image side in pixels.")
@click.option("--n", type=int, default=64, show_default=True, help="Images synthesised (timed).")
@click.option("--batch", type=int, default=16, show_default=True, help="Images per synthesis call.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--textures", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Anomaly sources.")
@click.option("--peer", type=click.Choice(["anomalib"]), help="Also time anomalib's PerlinAnomalyGenerator.")
@click.option(
    "--peer-python",
    type=click.Path(path_type=Path),
    default=DEFAULT_PEER_PYTHON,
    show_default=True,
    help="Python of the venv with anomalib (built by shared/peers/setup.sh).",
)
@click.option(
    "--peer-script",
    type=click.Path(path_type=Path),
    default=Path(__file__).resolve().parents[3] / ".." / "shared" / "peers" / "anomalib_perlin.py",
    help="The peer's timing script.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def draem_synth(
    size: int,
    n: int,
    batch: int,
    device: str,
    textures: Path | None,
    peer: str | None,
    peer_python: Path,
    peer_script: Path,
    as_json: bool,
) -> None:
    """Images per second of DRAEM anomaly synthesis (and of anomalib's, with --peer anomalib)."""
    import torch

    result: dict[str, object] = {
        "benchmark": "draem-synth",
        "size": size,
        "n": n,
        "batch": batch,
        "device": device,
        "textures": bool(textures),
        "torch_threads": torch.get_num_threads(),
        "fewgen": _fewgen_images_per_second(n, size, batch, device, textures),
    }
    if peer == "anomalib":
        if not peer_python.is_file() or not peer_script.is_file():
            raise click.UsageError(
                f"peer not available: need {peer_python} (run shared/peers/setup.sh) and {peer_script}"
            )
        command = [str(peer_python), str(peer_script), str(n), str(size)] + ([str(textures)] if textures else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        peer_result = json.loads(output.strip().splitlines()[-1])
        result["anomalib"] = peer_result
        result["speedup"] = round(result["fewgen"]["images_per_s"] / peer_result["images_per_s"], 2)  # type: ignore[index]
    if not as_json:
        print(f"fewgen: {result['fewgen']['images_per_s']:.1f} images/s", file=sys.stderr)  # type: ignore[index]
    click.echo(json.dumps(result))
