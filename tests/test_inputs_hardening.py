"""Hostile or broken inputs: each costs its sample (listed with a reason) or gives one line, never a traceback.

Covers decompression bombs and the pixel limit, paths and names from dataset text, the folders
format's templates, the tree fingerprint on links and unreadable folders, and whole runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pydantic import ValidationError

from fewgen.api import NoParams
from fewgen.cli import cli
from fewgen.dataset import Box, Dataset, Sample, name_problem
from fewgen.errors import UsageError
from fewgen.fingerprint import tree_fingerprint
from fewgen.formats._common import file_names, sample_id
from fewgen.formats.coco import CocoFormat, CocoOptions
from fewgen.formats.folders import FoldersFormat, FoldersOptions, Source
from fewgen.formats.mvtec import MvtecFormat, MvtecOptions
from fewgen.formats.native import FewgenFormat
from fewgen.formats.yolo import YoloFormat, YoloOptions
from fewgen.imageio import CorruptImage, ImageTooLarge, checked_size, load_mask, load_rgb, open_image
from fewgen.testing import make_context, png_claiming


def write_image(path: Path, width: int = 16, height: int = 12, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def reasons(issues) -> str:
    return " | ".join(f"{issue.path}: {issue.reason}" for issue in issues)


# --- 1. decompression bombs and the pixel limit ------------------------------------------


def test_a_bomb_header_is_refused_before_decoding_with_its_size(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    assert bomb.stat().st_size < 1000
    with pytest.raises(ImageTooLarge) as refused:
        checked_size(bomb)
    assert str(refused.value) == (
        "image is 20000x20000 = 400 MP, over fewgen's limit of 40 MP (FEWGEN_MAX_IMAGE_PIXELS)"
    )
    for load in (load_rgb, load_mask):
        with pytest.raises(ImageTooLarge, match=f"{bomb}.* is 20000x20000 = 400 MP"):
            load(bomb)


def test_the_limit_is_checked_below_pillows_own_and_can_be_set(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(png_claiming(7000, 7000))  # 49 MP: under Pillow's warning, over fewgen's 40 MP
    with pytest.raises(ImageTooLarge, match="7000x7000 = 49 MP"):
        checked_size(big)
    small = write_image(tmp_path / "small.png", 16, 12)
    monkeypatch.setenv("FEWGEN_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ImageTooLarge, match=r"16x12 = 0.000192 MP, over fewgen's limit of 0.0001 MP"):
        load_rgb(small)
    monkeypatch.setenv("FEWGEN_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(UsageError, match="FEWGEN_MAX_IMAGE_PIXELS must be a positive number"):
        load_rgb(small)


def test_running_out_of_memory_on_one_image_is_a_corrupt_image(tmp_path, monkeypatch):
    image = write_image(tmp_path / "a.png")

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Image.Image, "convert", exhausted)
    with pytest.raises(ImageTooLarge, match=r"\(16x12\): not enough memory"):
        load_rgb(image)


def test_every_reader_skips_a_bomb(tmp_path):
    yolo = tmp_path / "yolo"
    write_image(yolo / "images/train/good.png")
    (yolo / "images/train/bomb.png").write_bytes(png_claiming(20000, 20000))
    (yolo / "labels").mkdir()
    result = YoloFormat().read(yolo, YoloOptions())
    assert [s.id for s in result.dataset] == ["images/train/good"]
    assert [issue.path for issue in result.issues] == [str(yolo / "images/train/bomb.png")]
    assert "20000x20000 = 400 MP" in result.issues[0].reason

    mvtec = tmp_path / "mvtec"
    write_image(mvtec / "train/good/000.png")
    (mvtec / "test/crack/001.png").parent.mkdir(parents=True)
    write_image(mvtec / "test/crack/001.png")
    (mvtec / "ground_truth/crack").mkdir(parents=True)
    (mvtec / "ground_truth/crack/001_mask.png").write_bytes(png_claiming(30000, 30000))
    result = MvtecFormat().read(mvtec, MvtecOptions())
    assert [s.id for s in result.dataset] == ["train/good/000"]
    assert "30000x30000" in reasons(result.issues)


def test_generators_skip_a_bomb_and_go_on(tmp_path):
    from fewgen_augment.generator import AugmentGenerator, AugmentParams

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    good = write_image(tmp_path / "good.png", 32, 24)
    dataset = Dataset([Sample("bomb", bomb, 20000, 20000), Sample("good", good, 32, 24)], [])
    ctx = make_context(tmp_path)
    new = list(AugmentGenerator(AugmentParams(preset="flip")).generate(dataset, ctx))
    assert [s.provenance.parent for s in new] == ["good"]
    assert [issue.path for issue in ctx.issues] == [str(bomb)]
    assert "over fewgen's limit" in ctx.issues[0].reason


def test_few_shot_examples_skip_a_bomb(tmp_path):
    from fewgen_maml.examples import Example, load_examples

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    examples = [Example("bomb", bomb, "a", "train"), Example("good", write_image(tmp_path / "good.png"), "a", "train")]
    skipped = []
    pixels, kept = load_examples(examples, 8, on_error=lambda path, reason: skipped.append((path, reason)))
    assert kept == [1] and pixels.shape[0] == 1
    assert skipped[0][0] == bomb and "20000x20000" in skipped[0][1]


def test_open_image_reports_decoding_errors_inside_the_block(tmp_path):
    truncated = tmp_path / "t.png"
    write_image(truncated, 64, 64)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CorruptImage, match="cannot decode image"), open_image(truncated) as image:
        image.load()


# --- 2. paths and names from dataset text -------------------------------------------------


def test_unsafe_names_are_recognised():
    for text in ("a\x00b", "a\nb", "/etc/passwd", "\\\\server\\share", "../x", "a/../../b", ".."):
        assert name_problem(text), text
    for text in ("a/b", "x..y", "traffic light", "images/train/0001", "défaut"):
        assert name_problem(text) is None, text


def _native(folder: Path, records: list, classes: object = ("person",)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps({"name": "hostile", "classes": classes}))
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in records]
    (folder / "samples.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def test_samples_jsonl_with_hostile_text_skips_those_samples(tmp_path):
    root = tmp_path / "set"
    write_image(root / "images/a.png", 16, 12)
    write_image(tmp_path / "outside.png", 16, 12)
    good = {"id": "a", "image": "images/a.png", "width": 16, "height": 12, "split": "train"}
    hostile = [
        {**good, "id": "split", "split": "../../x"},
        {**good, "id": "../../etc/x"},
        {**good, "id": "/abs"},
        {**good, "id": "nul\x00id"},
        {**good, "id": "label", "label": "good\nlabel"},
        {**good, "id": "domain", "domain": "../night"},
        {**good, "id": "climb", "image": "../outside.png"},
        {**good, "id": ["a", "list"]},
        {**good, "id": "width", "width": "wide"},
        {**good, "id": "nan", "height": float("nan")},
        {**good, "id": "huge", "width": 1e400},
        {**good, "id": "boxes", "boxes": [[0, 1, 2]]},
        {**good, "id": "attributes", "attributes": [1, 2]},
        {**good, "id": "true", "width": True},
        [1, 2, 3],
        b'{"id": "bad utf-8 \xff"}',
        b"[" * 100000,
    ]
    _native(root, [good, *hostile])
    before = files_under(tmp_path)
    result = FewgenFormat().read(root, NoParams())
    assert [s.id for s in result.dataset] == ["a"]
    assert len(result.issues) == len(hostile)
    text = reasons(result.issues)
    for expected in (
        "split '../../x' is not one of train, val, test",
        "id '../../etc/x' contains a '..' segment",
        "id '/abs' is an absolute path",
        "id 'nul\\x00id' contains a control character",
        "label 'good\\nlabel' contains a control character",
        "domain '../night' contains",
        "image path '../outside.png' leads outside the dataset folder",
        "'id' must be a string, not a list",
        "'width' must be a number, not a string",
        "'height' must be a positive whole number, not nan",
        "'width' must be a positive whole number, not inf",
        "not enough values to unpack",
        "'attributes' must be an object, not a list",
        "'width' must be a number, not a boolean",
        "a record must be a JSON object, not a list",
        "not UTF-8 text",
        "JSON nested too deeply",
    ):
        assert expected in text, expected
    assert files_under(tmp_path) == before


def test_an_absolute_image_path_in_samples_jsonl_stays_allowed(tmp_path):
    # Dataset.save writes files outside the dataset folder as absolute paths; reading them back is the design.
    image = write_image(tmp_path / "elsewhere/a.png", 16, 12)
    Dataset([Sample("a", image, 16, 12)], []).save(tmp_path / "set")
    result = FewgenFormat().read(tmp_path / "set", NoParams())
    assert result.issues == [] and result.dataset.samples[0].image == image


def test_an_unsafe_class_name_is_one_usage_error(tmp_path):
    write_image(tmp_path / "set/images/a.png", 16, 12)
    good = {"id": "a", "image": "images/a.png", "width": 16, "height": 12}
    _native(tmp_path / "set", [good], classes=["person", "../../car"])
    with pytest.raises(UsageError, match=r"class 1 of .*dataset.json, '\.\./\.\./car', contains a '\.\.' segment"):
        FewgenFormat().read(tmp_path / "set", NoParams())
    _native(tmp_path / "set", [good], classes="person")
    with pytest.raises(UsageError, match="'classes' must be a list"):
        FewgenFormat().read(tmp_path / "set", NoParams())

    yolo = tmp_path / "yolo"
    write_image(yolo / "images/train/a.png")
    (yolo / "labels").mkdir()
    (yolo / "data.yaml").write_text('train: images/train\nnames: {0: "car\\nboat"}\n')
    with pytest.raises(UsageError, match=r"class 0 of the YOLO dataset .* control character"):
        YoloFormat().read(yolo, YoloOptions(data="data.yaml"))
    (yolo / "data.yaml").write_text("train: 5\nnames: [car]\n")
    with pytest.raises(UsageError, match=r"train of data YAML .* must be a folder or \.txt list"):
        YoloFormat().read(yolo, YoloOptions(data="data.yaml"))


def test_file_names_from_disk_with_a_newline_are_skipped(tmp_path):
    root = tmp_path / "yolo"
    write_image(root / "images/train/ok.png")
    write_image(root / "images/train/new\nline.png", seed=1)
    (root / "labels").mkdir()
    result = YoloFormat().read(root, YoloOptions())
    assert [s.id for s in result.dataset] == ["images/train/ok"]
    assert "contains a control character" in result.issues[0].reason


def _coco(tmp_path: Path, images: list, annotations: list, categories: list | None = None) -> Path:
    root = tmp_path / "coco"
    write_image(root / "images/a.png", 16, 12)
    write_image(root / "images/b.png", 16, 12, seed=1)
    document = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "car"}] if categories is None else categories,
    }
    (root / "annotations.json").write_text(json.dumps(document))
    return root


def test_coco_with_wrong_json_types_skips_those_records(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 16, "height": 12},
        {"id": [2], "file_name": "b.png"},
        {"id": {"x": 3}, "file_name": "b.png"},
        {"id": 4, "file_name": ["b.png"]},
        {"id": 5, "file_name": "../../../etc/passwd"},
        {"id": 6, "file_name": "/etc/passwd"},
        {"id": 7},
        "not a record",
    ]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
        {"id": 2, "image_id": [1], "category_id": 1, "bbox": [1, 1, 4, 4]},
        {"id": 3, "image_id": 99, "category_id": 1, "bbox": [1, 1, 4, 4]},
        ["not", "an", "annotation"],
    ]
    root = _coco(tmp_path, images, annotations)
    result = CocoFormat().read(root, CocoOptions(annotations="annotations.json"))
    assert [s.id for s in result.dataset] == ["images/a"]
    assert len(result.dataset.samples[0].boxes) == 1
    text = reasons(result.issues)
    for expected in (
        "image id must be a number or a string, not list",
        "image id must be a number or a string, not dict",
        "file_name must be a non-empty string",
        "file_name '../../../etc/passwd' contains a '..' segment",
        "file_name '/etc/passwd' is an absolute path",
        "image record without id or file_name",
        "annotation for an unknown image: {'id': 2",
        "annotation for an unknown image: {'id': 3",
        "annotation for an unknown image: ['not'",
    ):
        assert expected in text, expected
    assert len(result.issues) == 10


def test_coco_bad_boxes_and_categories(tmp_path):
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4]},
        {"id": 2, "image_id": 2, "category_id": [1], "bbox": [1, 1, 4, 4]},
    ]
    result = CocoFormat().read(_coco(tmp_path, images, annotations), CocoOptions(annotations="annotations.json"))
    assert len(result.dataset) == 0
    assert "bbox must be [x, y, width, height]" in reasons(result.issues)
    assert "unknown category [1]" in reasons(result.issues)
    root = _coco(tmp_path, images, [], categories=[{"id": [1], "name": "car"}])
    with pytest.raises(UsageError, match="category without id or name"):
        CocoFormat().read(root, CocoOptions(annotations="annotations.json"))
    root = _coco(tmp_path, images, [], categories=[{"id": 1, "name": "/car"}])
    with pytest.raises(UsageError, match="'/car', is an absolute path"):
        CocoFormat().read(root, CocoOptions(annotations="annotations.json"))
    (root / "annotations.json").write_text("[" * 100000)
    with pytest.raises(UsageError, match="not valid JSON: nested too deeply"):
        CocoFormat().read(root, CocoOptions(annotations="annotations.json"))


def test_ids_of_images_outside_the_base_never_climb_out():
    assert sample_id(Path("/data/set/images/a.png"), Path("/data/set")) == "images/a"
    assert sample_id(Path("/data/set/../other/b.png"), Path("/data/set")) == "data/other/b"
    assert sample_id(Path("/elsewhere/c.jpg"), Path("/data/set")) == "elsewhere/c"


def _sample(image: Path, id_: str, split: str = "train") -> Sample:
    return Sample(id_, image, 16, 12, split, (Box(0, 1, 1, 5, 5),))


def test_file_names_are_one_harmless_segment(tmp_path):
    image = write_image(tmp_path / "a.png")
    ids = ["../../x", "..", "/", "nul\x00id", "new\nline", "é" * 300, "a/b"]
    names = file_names([_sample(image, i) for i in ids])
    assert names[:5] == ["..__..__x", "sample", "sample_2", "nul_id", "new_line"]
    assert len(names[5].encode()) <= 200 and names[6] == "a__b"
    for name in names:
        assert "/" not in name and name.strip(".") and name_problem(name) is None


@pytest.mark.parametrize("fmt", [YoloFormat(), CocoFormat(), MvtecFormat()])
def test_writers_refuse_a_split_that_is_no_folder_of_theirs(tmp_path, fmt):
    image = write_image(tmp_path / "src/a.png")
    dest = tmp_path / "deep/er/out"
    dest.mkdir(parents=True)
    dataset = Dataset([_sample(image, "a", split="../../../escape")], ["car"])
    with pytest.raises(UsageError, match=r"split '\.\./\.\./\.\./escape' of sample 'a' is not one of"):
        fmt.write(dataset, dest, fmt.write_options()())
    assert files_under(tmp_path) == {"src", "src/a.png", "deep", "deep/er", "deep/er/out"}


def test_writers_name_files_safely_from_hostile_ids(tmp_path):
    image = write_image(tmp_path / "src/a.png")
    dataset = Dataset([_sample(image, "../../../x\n"), _sample(image, "/etc/cron.d/y")], ["car"])
    for fmt in (FewgenFormat(), YoloFormat(), CocoFormat()):
        dest = tmp_path / fmt.name
        written = fmt.write(dataset, dest, fmt.write_options()())
        assert all(s.image.is_relative_to(dest) for s in written), fmt.name
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")} == {"src", "fewgen", "yolo", "coco"}


# --- 3. the folders format's templates ----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"images": "{name}.png", "mask": "../m/{name}.png"}, "mask template '../m/{name}.png' contains a '..'"),
        ({"images": "{name}.png", "boxes": "/tmp/{name}.txt"}, "boxes template '/tmp/{name}.txt' is an absolute path"),
        ({"images": "a\x00/{name}.png"}, "images template 'a\\x00/{name}.png' contains a control character"),
        ({"images": "{name}.png", "mask": "m/{name}\n.png"}, "mask template 'm/{name}\\n.png' contains a control"),
        ({"images": "{name}.png", "label": "good\n"}, "label 'good\\n' contains a control character"),
    ],
)
def test_folders_templates_must_stay_inside_the_root(source, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        Source(**source)


def test_fewgen_validate_refuses_an_escaping_output_template_in_one_line(tmp_path):
    from fewgen.testing import make_native_dataset

    make_native_dataset(tmp_path / "data", count=2)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: t\ndataset: {format: fewgen, root: data}\nsteps: []\noutput:\n  format: folders\n"
        "  options:\n    sources:\n      - images: '{split}/{name}.png'\n        mask: '../../{name}.png'\n"
    )
    proc = subprocess.run([sys.executable, "-m", "fewgen.cli", "validate", str(recipe)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "mask template '../../{name}.png' contains a '..' segment" in lines[0]


# --- 4. the tree fingerprint and folder walks ---------------------------------------------


def test_fingerprint_does_not_follow_links_to_folders(tmp_path):
    root = tmp_path / "root"
    write_image(root / "images/a.png")
    os.symlink("..", root / "images/loop")  # a loop
    os.symlink(tmp_path / "outside", root / "out")  # outside the root
    write_image(tmp_path / "outside/secret.png")
    os.symlink(root / "images", root / "again")  # inside the root: fingerprinted where it is
    os.symlink("missing.png", root / "dangling.png")
    paths = [path for path, _, _ in tree_fingerprint(root)]
    assert paths == ["again", "dangling.png", "images/a.png", "images/loop", "out"]
    before = tree_fingerprint(root)
    os.remove(root / "out")
    os.symlink(tmp_path, root / "out")
    assert tree_fingerprint(root) != before  # re-pointing a link changes the key


def test_fingerprint_records_unreadable_folders_and_refuses_an_unreadable_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write_image(root / "ok/a.png")
    (root / "locked").mkdir()
    scandir = os.scandir

    def guarded(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)
    assert [entry[0] for entry in tree_fingerprint(root)] == ["locked/", "ok/a.png"]
    with pytest.raises(UsageError, match=r"cannot read the dataset folder .*locked: Permission denied"):
        tree_fingerprint(root / "locked")


def test_fingerprint_of_proc_does_not_crash():
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    assert tree_fingerprint(Path("/proc/self"))


def test_readers_walking_folders_survive_link_loops(tmp_path):
    yolo = tmp_path / "yolo"
    write_image(yolo / "images/train/a.png")
    (yolo / "labels").mkdir()
    os.symlink("..", yolo / "images/train/loop")
    assert [s.id for s in YoloFormat().read(yolo, YoloOptions()).dataset] == ["images/train/a"]

    folders = tmp_path / "folders"
    write_image(folders / "good/a.png")
    os.symlink("..", folders / "good/loop")
    os.symlink(".", folders / "self")
    options = FoldersOptions(sources=[{"images": "{label}/{name}.png"}])
    assert [s.id for s in FoldersFormat().read(folders, options).dataset] == ["good/a"]

    mvtec = tmp_path / "mvtec"
    write_image(mvtec / "train/good/000.png")
    os.symlink("..", mvtec / "train/loop")
    assert [s.id for s in MvtecFormat().read(mvtec, MvtecOptions()).dataset] == ["train/good/000"]


def test_an_unreadable_folder_is_reported_by_the_reader(tmp_path, monkeypatch):
    root = tmp_path / "yolo"
    write_image(root / "images/train/a.png")
    write_image(root / "images/val/b.png")
    (root / "labels").mkdir()
    scandir = os.scandir

    def guarded(path):
        if Path(path).name == "val":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)
    result = YoloFormat().read(root, YoloOptions())
    assert [s.id for s in result.dataset] == ["images/train/a"]
    assert [(i.path, i.reason) for i in result.issues] == [
        (str(root / "images/val"), "cannot list folder: Permission denied")
    ]


# --- a whole run ----------------------------------------------------------------------------


def test_a_run_over_hostile_inputs_completes_and_lists_them(tmp_path, monkeypatch):
    root = tmp_path / "set"
    write_image(root / "images/a.png", 16, 12)
    write_image(root / "images/b.png", 16, 12, seed=1)
    (root / "images/bomb.png").write_bytes(png_claiming(20000, 20000))
    good = {"id": "a", "image": "images/a.png", "width": 16, "height": 12}
    _native(
        root,
        [
            good,
            {**good, "id": "b", "image": "images/b.png", "split": "val"},
            {**good, "id": "escape", "image": "images/b.png", "split": "../../escape"},
            {**good, "id": "bomb", "image": "images/bomb.png", "width": 20000, "height": 20000},
        ],
    )
    (tmp_path / "r.yaml").write_text(
        "name: t\ndataset: {format: fewgen, root: set}\nsteps:\n  - evaluator: dataset_stats\noutput: {format: yolo}\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "r.yaml", "--out", "out", "--no-progress", "--cache-dir", "cache"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    skipped = {Path(i["path"]).name: i["reason"] for i in manifest["source"]["issues"]}
    assert manifest["skipped_samples"] == 2
    assert "split '../../escape' is not one of" in skipped["b.png"]
    assert "20000x20000 = 400 MP" in skipped["bomb.png"]
    # Besides the run folder's own lock file (.out.lock), nothing new beside the inputs.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["cache", "out", "r.yaml", "set"]
