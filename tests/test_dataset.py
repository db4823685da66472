from __future__ import annotations

from pathlib import Path

from fewgen.dataset import Box, Dataset, Provenance, Sample


def test_samples_jsonl_round_trip_keeps_everything(tmp_path: Path):
    inside = tmp_path / "ds" / "images" / "a.png"
    outside = Path("/data/elsewhere/b.jpg")
    samples = [
        Sample(
            "a",
            inside,
            10,
            20,
            "val",
            (Box(1, 0.5, 1.25, 9.0, 19.5),),
            tmp_path / "ds" / "m.png",
            "crack",
            "night",
            Provenance("augment", "night", 7, "b"),
            {"score": 0.25},
        ),
        Sample("b", outside, 30, 40),
    ]
    Dataset(samples, ["person", "car"], "demo").save(tmp_path / "ds")
    lines = (tmp_path / "ds" / "samples.jsonl").read_text().splitlines()
    assert '"image": "images/a.png"' in lines[0]  # inside the folder: relative
    assert '"image": "/data/elsewhere/b.jpg"' in lines[1]  # elsewhere: absolute
    loaded = Dataset.load(tmp_path / "ds")
    assert loaded.samples == samples
    assert loaded.classes == ["person", "car"] and loaded.name == "demo"


def test_summary_counts_splits_domains_and_synthetic(tmp_path: Path):
    real = Sample("r", tmp_path / "r.png", 4, 4, "train", (Box(0, 0, 0, 1, 1), Box(1, 0, 0, 2, 2)), domain="day")
    fake = real.derive(id="f", provenance=Provenance("augment", "night", 1, "r"), domain="night")
    summary = Dataset([real, fake, real.derive(id="t", split="test")], ["person", "car"]).summary()
    assert summary == {
        "samples": 3,
        "splits": {"test": 1, "train": 2},
        "domains": {"day": 2, "night": 1},
        "synthetic": 1,
        "boxes": {"person": 3, "car": 3},
    }


def test_box_clipping_and_size():
    box = Box(0, -5, 2, 50, 30).clipped(40, 20)
    assert (box.x1, box.y1, box.x2, box.y2) == (0, 2, 40, 20)
    assert box.width == 40 and box.height == 18
