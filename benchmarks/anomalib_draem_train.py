"""Peer side of ``fewgen bench draem-anomaly``: anomalib's DRAEM trained and tested on the same images.

Runs in the anomalib venv (``shared/peers/setup.sh``), not in fewgen's: it imports no fewgen.
It reproduces what anomalib's Lightning module ``Draem`` does per training step (its
``PerlinAnomalyGenerator`` augmenter with anomalib's default blend factor (0.1, 1.0), the
full-width ``DraemModel``, ``DraemLoss``, Adam 1e-4 with ``MultiStepLR`` at epochs 400 and
600) in a plain loop, so the wall-clock budget is measured the same way as fewgen's. Test
images are scored by ``DraemModel`` in eval mode (anomalib's image score is the map's maximum).

Usage: python anomalib_draem_train.py JOB.json OUT.npz
JOB.json: {"train": [paths], "test": [paths], "size": S, "batch": B, "minutes": M,
           "threads": T, "score_threads": T2, "seed": N, "textures": dir or null}
Prints one JSON line (steps, epochs, seconds) and writes OUT.npz with "scores" and "maps".
"""

import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
from anomalib.models.image.draem.loss import DraemLoss
from anomalib.models.image.draem.torch_model import DraemModel
from PIL import Image


def load(paths, size):
    out = torch.empty(len(paths), 3, size, size)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float() / 255
        out[index] = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return out.clamp(0, 1)


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    torch.set_num_threads(job["threads"])
    torch.manual_seed(job["seed"])
    train = load(job["train"], job["size"])
    augmenter = PerlinAnomalyGenerator(anomaly_source_path=job.get("textures"), blend_factor=(0.1, 1.0))
    model = DraemModel(sspcab=False)
    loss_fn = DraemLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[400, 600], gamma=0.1)
    budget = job["minutes"] * 60
    started = time.perf_counter()
    steps = epochs = 0
    model.train()
    while time.perf_counter() - started < budget:
        order = torch.randperm(len(train))
        for start in range(0, len(train), job["batch"]):
            if time.perf_counter() - started >= budget:
                break
            images = train[order[start : start + job["batch"]]]
            augmented, mask = augmenter(images)
            reconstruction, prediction = model(augmented)
            loss = loss_fn(images, reconstruction, mask, prediction)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        else:
            epochs += 1
            scheduler.step()
    seconds = time.perf_counter() - started
    # Scoring is outside the budget; the full-width network is slow to run, so it may use every core.
    torch.set_num_threads(job.get("score_threads", job["threads"]))
    model.eval()
    test = job["test"]
    scores, maps = [], []
    with torch.no_grad():
        for start in range(0, len(test), 16):
            output = model(load(test[start : start + 16], job["size"]))
            scores.append(output.pred_score.float())
            maps.append(output.anomaly_map.float())
    np.savez(sys.argv[2], scores=torch.cat(scores).numpy(), maps=torch.cat(maps).numpy().astype(np.float16))
    params = sum(p.numel() for p in model.parameters())
    print(
        json.dumps(
            {
                "peer": "anomalib.Draem",
                "steps": steps,
                "epochs_completed": epochs,
                "seconds": seconds,
                "parameters": params,
                "threads": job["threads"],
            }
        )
    )


if __name__ == "__main__":
    main()
