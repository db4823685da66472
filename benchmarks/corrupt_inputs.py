"""Run `fewgen run` over datasets with one corruption each, and check every run survives it.

    .venv/bin/python benchmarks/corrupt_inputs.py [--json] [--only TEXT]

Builds small valid datasets in the yolo, coco, folders (image + mask) and native (samples.jsonl)
layouts in a temporary folder, then, per case, a fresh copy with one corruption: a damaged,
empty or oversized image, a broken label or annotation, a bad mask, a link loop, a hostile path
or split. Each copy goes through a whole `fewgen run` (a separate process, as a user runs it) with
the augment generator and the dataset_stats evaluator. A case passes when the run exits as
expected (0, or 2 with one line for dataset-wide problems) and the bad sample is listed with a
reason in manifest.json (or, for harmless oddities, kept). Prints one JSON object with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from fewgen.testing import png_claiming

WIDTH, HEIGHT = 32, 24
RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Expected:
    """What a run over a corrupted copy must show."""

    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path ends with, reason contains)
    exit_code: int = 0
    samples: int | None = None  # samples read, when the corruption must cost none (or a known number)
    note: str = ""


@dataclass
class Case:
    layout: str
    corruption: str
    apply: Callable[[Path], Expected]


# --- files ----------------------------------------------------------------------------------


def write_image(path: Path, seed: int, size: tuple[int, int] = (WIDTH, HEIGHT), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def write_mask(path: Path, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[4:12, 6:18] = 255
    Image.fromarray(mask).save(path)
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


# --- valid datasets ---------------------------------------------------------------------------

COUNT = 4  # images per dataset


def build_yolo(root: Path) -> None:
    for index in range(COUNT):
        split = "train" if index < 3 else "val"
        write_image(root / f"images/{split}/img{index}.png", index)
        labels = root / f"labels/{split}/img{index}.txt"
        labels.parent.mkdir(parents=True, exist_ok=True)
        labels.write_text(f"{index % 2} 0.5 0.5 0.25 0.25\n")
        write_mask(root / f"masks/{split}/img{index}.png")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [car, person]\n")


def build_coco(root: Path) -> None:
    images, annotations = [], []
    for index in range(COUNT):
        write_image(root / f"images/img{index}.png", index)
        images.append({"id": index + 1, "file_name": f"img{index}.png", "width": WIDTH, "height": HEIGHT})
        annotations.append(
            {"id": index + 1, "image_id": index + 1, "category_id": 1 + index % 2, "bbox": [4, 4, 10, 8], "iscrowd": 0}
        )
    document = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
    }
    (root / "annotations.json").write_text(json.dumps(document, indent=1))


def build_folders(root: Path) -> None:
    for index in range(COUNT):
        write_image(root / f"images/img{index}.png", index)
        write_mask(root / f"masks/img{index}.png")


def build_native(root: Path) -> None:
    lines = []
    for index in range(COUNT):
        write_image(root / f"images/img{index}.png", index)
        record = {"id": f"img{index}", "image": f"images/img{index}.png", "width": WIDTH, "height": HEIGHT}
        lines.append(json.dumps({**record, "split": "train", "boxes": [[0, 4, 4, 14, 12]]}))
    (root / "samples.jsonl").write_text("\n".join(lines) + "\n")
    (root / "dataset.json").write_text(json.dumps({"name": "native", "classes": ["car"]}))


LAYOUTS: dict[str, tuple[Callable[[Path], None], dict[str, Any]]] = {
    "yolo": (build_yolo, {"format": "yolo", "options": {"data": "data.yaml"}}),
    "coco": (build_coco, {"format": "coco", "options": {"annotations": "annotations.json"}}),
    "folders": (
        build_folders,
        {"format": "folders", "options": {"sources": [{"images": "images/{name}.png", "mask": "masks/{name}.png"}]}},
    ),
    "native": (build_native, {"format": "fewgen", "options": {}}),
}


# --- corruptions ------------------------------------------------------------------------------


def skip(path: str, reason: str = "") -> Expected:
    return Expected(skipped=[(path, reason)])


def yolo_label(text: str | bytes, reason: str) -> Callable[[Path], Expected]:
    def apply(root: Path) -> Expected:
        target = root / "labels/train/img1.txt"
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
        return skip("labels/train/img1.txt", reason)

    return apply


def yolo_cases() -> list[Case]:
    def truncated(root: Path) -> Expected:
        truncate(root / "images/train/img1.png")
        return skip("images/train/img1.png", "cannot decode")

    def zero_bytes(root: Path) -> Expected:
        (root / "images/train/img1.png").write_bytes(b"")
        return skip("images/train/img1.png", "cannot decode")

    def random_bytes(root: Path) -> Expected:
        (root / "images/train/img1.png").write_bytes(np.random.default_rng(7).bytes(4096))
        return skip("images/train/img1.png", "cannot decode")

    def bomb(root: Path) -> Expected:
        (root / "images/train/img1.png").write_bytes(png_claiming(20000, 20000))
        return skip("images/train/img1.png", "20000x20000 = 400 MP, over fewgen's limit")

    def wrong_extension(root: Path) -> Expected:
        # PNG bytes under a .jpg name: Pillow goes by the content, so the image is fine.
        (root / "images/train/img1.png").rename(root / "images/train/img1.jpg")
        return Expected(samples=COUNT, note="decoded by content; kept")

    def listed_missing(root: Path) -> Expected:
        (root / "train.txt").write_text("./images/train/img0.png\n./images/train/absent.png\n")
        (root / "data.yaml").write_text("train: train.txt\nval: images/val\nnames: [car, person]\n")
        return skip("images/train/absent.png", "cannot decode")

    def mask_wrong_size(root: Path) -> Expected:
        write_mask(root / "masks/train/img1.png", (WIDTH * 2, HEIGHT))
        return skip("masks/train/img1.png", "mask is 64x24 but the image is 32x24")

    def mask_unreadable(root: Path) -> Expected:
        (root / "masks/train/img1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        return skip("masks/train/img1.png", "cannot decode")

    def link_loop(root: Path) -> Expected:
        os.symlink("..", root / "images/train/loop")
        return Expected(samples=COUNT, note="link to a folder not followed")

    def unreadable(root: Path) -> Expected:
        target = root / "images/train/img1.png"
        target.chmod(0)
        if RUNNING_AS_ROOT:
            return Expected(samples=COUNT, note="running as root: chmod 000 does not stop reads, the image is read")
        return skip("images/train/img1.png", "cannot decode")

    def newline_name(root: Path) -> Expected:
        (root / "images/train/img1.png").rename(root / "images/train/img\n1.png")
        return skip("images/train/img\n1.png", "control character")

    def unsafe_class(root: Path) -> Expected:
        (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [car, ../../person]\n")
        return Expected(exit_code=2, note="dataset-wide: one-line usage error")

    return [
        Case("yolo", "truncated image", truncated),
        Case("yolo", "zero-byte image", zero_bytes),
        Case("yolo", "random bytes named .png", random_bytes),
        Case("yolo", "decompression bomb header", bomb),
        Case("yolo", "wrong extension (PNG named .jpg)", wrong_extension),
        Case("yolo", "image listed in train.txt missing", listed_missing),
        Case("yolo", "label with garbage line", yolo_label("hello world\n", "expected 5 values")),
        Case("yolo", "label with NaN", yolo_label("0 nan 0.5 0.2 0.2\n", "empty box")),
        Case("yolo", "label with negative box", yolo_label("0 -0.5 -0.5 0.2 0.2\n", "lies outside")),
        Case("yolo", "label with out-of-range box", yolo_label("0 1.5 0.5 0.2 0.2\n", "lies outside")),
        Case("yolo", "label with wrong class index", yolo_label("7 0.5 0.5 0.2 0.2\n", "class 7 out of range")),
        Case("yolo", "label with bad UTF-8", yolo_label(b"0 0.5 0.5 \xff\xfe 0.2\n", "cannot read labels")),
        Case("yolo", "label with too few values", yolo_label("0 0.5 0.5\n", "expected 5 values, found 3")),
        Case("yolo", "mask of wrong size", mask_wrong_size),
        Case("yolo", "mask unreadable", mask_unreadable),
        Case("yolo", "symlink loop", link_loop),
        Case("yolo", "unreadable file (chmod 000)", unreadable),
        Case("yolo", "newline in file name", newline_name),
        Case("yolo", "class name with '..'", unsafe_class),
    ]


def coco_document(root: Path) -> dict[str, Any]:
    return json.loads((root / "annotations.json").read_text())


def coco_edit(edit: Callable[[dict[str, Any], Path], Expected]) -> Callable[[Path], Expected]:
    def apply(root: Path) -> Expected:
        document = coco_document(root)
        expected = edit(document, root)
        (root / "annotations.json").write_text(json.dumps(document))
        return expected

    return apply


def coco_cases() -> list[Case]:
    def list_id(document: dict[str, Any], root: Path) -> Expected:
        document["images"][1]["id"] = [2]
        return Expected(
            skipped=[
                ("annotations.json", "image id must be a number or a string, not list"),
                ("annotations.json", "annotation for an unknown image"),
            ]
        )

    def missing_keys(document: dict[str, Any], root: Path) -> Expected:
        del document["images"][1]["file_name"]
        return Expected(
            skipped=[("annotations.json", "without id or file_name"), ("annotations.json", "unknown image")]
        )

    def unknown_image(document: dict[str, Any], root: Path) -> Expected:
        document["annotations"].append({"id": 99, "image_id": 42, "category_id": 1, "bbox": [1, 1, 2, 2]})
        return Expected(skipped=[("annotations.json", "annotation for an unknown image")], samples=COUNT)

    def bbox_length(document: dict[str, Any], root: Path) -> Expected:
        document["annotations"][1]["bbox"] = [1, 2, 3]
        return skip("images/img1.png", "bbox must be [x, y, width, height]")

    def bbox_strings(document: dict[str, Any], root: Path) -> Expected:
        document["annotations"][1]["bbox"] = ["a", "b", "c", "d"]
        return skip("images/img1.png", "could not convert")

    def unknown_category(document: dict[str, Any], root: Path) -> Expected:
        document["annotations"][1]["category_id"] = 9
        return skip("images/img1.png", "unknown category 9")

    def traversal(document: dict[str, Any], root: Path) -> Expected:
        document["images"][1]["file_name"] = "../../../../etc/passwd"
        return Expected(
            skipped=[("annotations.json", "contains a '..' segment"), ("annotations.json", "unknown image")]
        )

    def missing_image(document: dict[str, Any], root: Path) -> Expected:
        (root / "images/img1.png").unlink()
        return skip("images/img1.png", "cannot decode")

    def size_mismatch(document: dict[str, Any], root: Path) -> Expected:
        document["images"][1]["width"] = 640
        return skip("images/img1.png", "but the annotations say 640x24")

    def truncated(document: dict[str, Any], root: Path) -> Expected:
        truncate(root / "images/img1.png")
        return skip("images/img1.png", "cannot decode")

    def bomb(document: dict[str, Any], root: Path) -> Expected:
        (root / "images/img1.png").write_bytes(png_claiming(50000, 50000))
        return skip("images/img1.png", "over fewgen's limit")

    def jpeg_named_png(document: dict[str, Any], root: Path) -> Expected:
        write_image(root / "images/img1.png", 1, fmt="JPEG")
        return Expected(samples=COUNT, note="JPEG bytes under a .png name decode by content; kept")

    def bad_utf8(root: Path) -> Expected:
        (root / "annotations.json").write_bytes(b'{"images": ["\xff"]}')
        return Expected(exit_code=2, note="the whole annotation file is unreadable: one-line usage error")

    return [
        Case("coco", "image id is a list", coco_edit(list_id)),
        Case("coco", "image record missing file_name", coco_edit(missing_keys)),
        Case("coco", "annotation for unknown image", coco_edit(unknown_image)),
        Case("coco", "bbox of wrong length", coco_edit(bbox_length)),
        Case("coco", "bbox of strings", coco_edit(bbox_strings)),
        Case("coco", "unknown category id", coco_edit(unknown_category)),
        Case("coco", "file_name with ../", coco_edit(traversal)),
        Case("coco", "missing image file", coco_edit(missing_image)),
        Case("coco", "image size differs from record", coco_edit(size_mismatch)),
        Case("coco", "truncated image", coco_edit(truncated)),
        Case("coco", "decompression bomb header", coco_edit(bomb)),
        Case("coco", "wrong extension (JPEG named .png)", coco_edit(jpeg_named_png)),
        Case("coco", "annotation JSON with bad UTF-8", bad_utf8),
    ]


def folders_cases() -> list[Case]:
    def mask_wrong_size(root: Path) -> Expected:
        write_mask(root / "masks/img1.png", (WIDTH, HEIGHT + 8))
        return skip("masks/img1.png", "mask is 32x32 but the image is 32x24")

    def mask_missing(root: Path) -> Expected:
        (root / "masks/img1.png").unlink()
        return skip("images/img1.png", "mask masks/img1.png missing")

    def mask_unreadable(root: Path) -> Expected:
        (root / "masks/img1.png").write_bytes(b"GIF89a garbage")
        return skip("masks/img1.png", "cannot decode")

    def mask_empty(root: Path) -> Expected:
        (root / "masks/img1.png").write_bytes(b"")
        return skip("masks/img1.png", "cannot decode")

    def mask_bomb(root: Path) -> Expected:
        (root / "masks/img1.png").write_bytes(png_claiming(20000, 20000))
        return skip("masks/img1.png", "over fewgen's limit")

    def image_random(root: Path) -> Expected:
        (root / "images/img1.png").write_bytes(np.random.default_rng(3).bytes(2048))
        return skip("images/img1.png", "cannot decode")

    def dangling_link(root: Path) -> Expected:
        os.symlink("nowhere.png", root / "images/img9.png")
        write_mask(root / "masks/img9.png")
        return skip("images/img9.png", "cannot decode")

    def link_loop(root: Path) -> Expected:
        os.symlink(".", root / "images/self")
        os.symlink("..", root / "masks/up")
        return Expected(samples=COUNT, note="links to folders not followed")

    return [
        Case("folders", "mask of wrong size", mask_wrong_size),
        Case("folders", "mask missing", mask_missing),
        Case("folders", "mask unreadable", mask_unreadable),
        Case("folders", "zero-byte mask", mask_empty),
        Case("folders", "mask decompression bomb", mask_bomb),
        Case("folders", "random bytes named .png", image_random),
        Case("folders", "dangling symlink image", dangling_link),
        Case("folders", "symlink loop", link_loop),
    ]


def native_line(update: dict[str, Any] | bytes, reason: str, path: str = "") -> Callable[[Path], Expected]:
    def apply(root: Path) -> Expected:
        lines = (root / "samples.jsonl").read_bytes().splitlines()
        if isinstance(update, bytes):
            lines[1] = update
            where = "samples.jsonl:2"
        else:
            lines[1] = json.dumps({**json.loads(lines[1]), **update}).encode()
            where = path or "images/img1.png"
        (root / "samples.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        return skip(where, reason)

    return apply


def native_cases() -> list[Case]:
    return [
        Case("native", "bad split '../../x'", native_line({"split": "../../x"}, "split '../../x' is not one of")),
        Case("native", "id with '..'", native_line({"id": "../../etc/cron"}, "contains a '..' segment")),
        Case("native", "id is a list", native_line({"id": ["a"]}, "'id' must be a string", "samples.jsonl:2")),
        Case("native", "image path climbing out", native_line({"image": "../../x.png"}, "leads outside", "jsonl:2")),
        Case("native", "record line with bad UTF-8", native_line(b'{"id": "\xff"}', "not UTF-8")),
        Case("native", "width is NaN", native_line({"width": float("nan")}, "positive whole number", "jsonl:2")),
    ]


# --- running ----------------------------------------------------------------------------------


def recipe(root: Path, layout: str) -> str:
    dataset = {"root": str(root), **LAYOUTS[layout][1]}
    data = {
        "name": "corrupt",
        "dataset": dataset,
        "steps": [
            {"name": "flip", "generator": "augment", "params": {"preset": "flip"}},
            {"name": "stats", "evaluator": "dataset_stats"},
        ],
        "output": {"format": "fewgen"},
    }
    return yaml.safe_dump(data, sort_keys=False)


def run_case(case: Case, base: Path, work: Path) -> dict[str, Any]:
    root = work / "data"
    shutil.copytree(base / case.layout, root, symlinks=True)
    expected = case.apply(root)
    (work / "recipe.yaml").write_text(recipe(root, case.layout))
    command = [sys.executable, "-m", "fewgen.cli", "run", str(work / "recipe.yaml"), "--no-progress"]
    command += ["--out", str(work / "out"), "--cache-dir", str(work / "cache")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    manifest_path = work / "out/manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    issues = list(manifest.get("source", {}).get("issues", []))
    for step in manifest.get("steps", []):
        issues += step.get("issues", [])
    skipped = [{"path": _shown(i["path"], root), "reason": i["reason"]} for i in issues]
    problems = []
    if proc.returncode != expected.exit_code:
        problems.append(f"exit code {proc.returncode}, expected {expected.exit_code}")
    if expected.exit_code != 0:
        # Progress lines ("reading ... dataset") may come first; the error itself must be one line.
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
        if len(errors) != 1 or "Traceback" in proc.stderr:
            problems.append(f"expected one error line and no traceback: {proc.stderr.strip()!r}")
    for path, reason in expected.skipped:
        if not any(i["path"].endswith(path) and reason in i["reason"] for i in issues):
            problems.append(f"no skipped entry for {path!r} with {reason!r}")
    if expected.samples is not None and manifest and manifest["source"]["samples"] != expected.samples:
        problems.append(f"{manifest['source']['samples']} samples read, expected {expected.samples}")
    # Leave the temp folder removable whatever the corruption did.
    for path in root.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return {
        "layout": case.layout,
        "corruption": case.corruption,
        "exit_code": proc.returncode,
        "samples_read": manifest.get("source", {}).get("samples"),
        "skipped": skipped,
        "error": proc.stderr.strip().splitlines()[-1] if proc.returncode else None,
        "note": expected.note or None,
        "pass": not problems,
        "problems": problems,
    }


def _shown(path: str, root: Path) -> str:
    return path[len(str(root)) + 1 :] if path.startswith(f"{root}/") else path


def cases() -> list[Case]:
    return [*yolo_cases(), *coco_cases(), *folders_cases(), *native_cases()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of a line per case.")
    parser.add_argument("--only", help="Run only cases whose layout or corruption contains this text.")
    args = parser.parse_args()
    selected = [c for c in cases() if not args.only or args.only in f"{c.layout} {c.corruption}"]
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="fewgen-corrupt-") as tmp:
        base = Path(tmp) / "base"
        for layout, (build, _) in LAYOUTS.items():
            build(base / layout)
        for index, case in enumerate(selected):
            work = Path(tmp) / f"case{index:02d}"
            work.mkdir()
            result = run_case(case, base, work)
            results.append(result)
            if not args.json:
                verdict = "pass" if result["pass"] else "FAIL " + "; ".join(result["problems"])
                print(f"{case.layout:8} {case.corruption:40} exit {result['exit_code']}  {verdict}", flush=True)
    summary = {
        "benchmark": "corrupt_inputs",
        "corruptions": len(results),
        "completed": sum(r["exit_code"] == 0 for r in results),
        "passed": sum(r["pass"] for r in results),
        "failed": [f"{r['layout']}: {r['corruption']}" for r in results if not r["pass"]],
        "running_as_root": RUNNING_AS_ROOT,
        "seconds": round(time.perf_counter() - started, 1),
        "cases": results,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{summary['passed']}/{summary['corruptions']} passed in {summary['seconds']} s")
    sys.exit(0 if not summary["failed"] else 1)


if __name__ == "__main__":
    main()
