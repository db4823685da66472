#!/usr/bin/env bash
# One prepared check for a lent GPU machine (the `device` tool), short enough to rerun once in
# its 15 minutes: the tests marked `gpu`, then the step time of each learned method at its
# paper preset on CUDA, each bench's JSON envelope one line in $OUT/gpu_check.jsonl (or
# runs/gpu_check.jsonl), a summary line per bench on stderr. On a machine without a CUDA GPU it
# says so and exits 0, so it can be run anywhere; nothing in fewgen needs a GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, after `make install`
#
# Settings: DRAEM paper width at 256 px, batch 8; MUNIT paper preset at 256 px, batch 1;
# PS-GAN paper preset on the embedded street sample; MAML Omniglot 5-way 1-shot, meta-batch 32;
# YOLO11n 5 epochs at 320 px on the embedded street sample (baseline and one variant, one seed).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
FEWGEN="${FEWGEN:-.venv/bin/fewgen}"
RESULTS="${OUT:-runs}/gpu_check.jsonl"
mkdir -p "$(dirname "$RESULTS")"
export FEWGEN_CACHE="${FEWGEN_CACHE:-$(mktemp -d)}" YOLO_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1

gpu="$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "")')"
if [ -z "$gpu" ]; then
	echo '{"benchmark": "gpu_check", "gpu": null, "note": "torch finds no CUDA GPU here: nothing to check"}' | tee "$RESULTS"
	exit 0
fi
echo "gpu_check on $gpu; results in $RESULTS" >&2
: > "$RESULTS"
failed=0

run() { # NAME COMMAND...: one bench, its envelope appended, a line of what it measured
	local name="$1"
	shift
	local started=$SECONDS
	if "$@" --json >> "$RESULTS" 2> "${RESULTS%.jsonl}.$name.log"; then
		echo "$name: ok in $((SECONDS - started)) s" >&2
	else
		echo "$name: FAILED (see ${RESULTS%.jsonl}.$name.log)" >&2
		failed=1
	fi
}

"$PYTHON" -m pytest -m gpu -q -p no:cacheprovider tests plugins || failed=1
run draem-train "$FEWGEN" bench draem-train --device cuda --preset paper --size 256 --batch 8 --steps 5
run munit-speed "$FEWGEN" bench munit-speed --device cuda --preset paper --size 256 --iterations 5
run psgan "$FEWGEN" bench psgan --device cuda --preset paper --iterations 50 --data datasets/street_sample \
	--format yolo --class 0 --min-height 16
run maml-speed "$FEWGEN" bench maml-speed --device cuda --task omniglot --iters 20 --repeats 2
run detect "$FEWGEN" bench detect --device cuda --data datasets/street_sample --card street_sample \
	--train-images 20 --epochs 5 --imgsz 320 --seeds 0 --preset geometric
exit $failed
