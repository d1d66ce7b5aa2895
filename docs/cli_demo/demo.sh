#!/bin/bash
# The issue's commands as a user runs them. usage: demo.sh <checkout with .venv> <scratch dir> <model.pt>
HERE=$(cd "$(dirname "$0")" && pwd); T=$1; W=$2; M=$3; S=$T/.venv/bin/srcore; PY=$T/.venv/bin/python
cd "$T" || exit 1
rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
say() { echo; echo "### $*"; }
rc() { echo "[exit $?]"; }
say "checkout $(git -C "$T" log --oneline -1)"; lscpu | grep "Model name"; grep -q amx /proc/cpuinfo && echo AMX || echo "no AMX"; uptime
say "srcore --version"; $S --version; rc
say "srcore --help, 5 runs (s)"; for i in 1 2 3 4 5; do /usr/bin/time -f "%e" $S --help > /dev/null; done
say "srcore upscale --help, 3 runs (s)"; for i in 1 2 3; do /usr/bin/time -f "%e" $S upscale --help > /dev/null; done
say "phone photo: EXIF Orientation 6 JPEG from data/raw/train/BSDS200/100075.jpg"
$PY "$HERE/make_phone.py" data/raw/train/BSDS200/100075.jpg "$W/phone.jpg"
$S upscale "$W/phone.jpg" -o "$W/out" --model "$M"; rc
$PY "$HERE/check_phone.py" data/raw/train/BSDS200/100075.jpg "$W/out/phone.png"
say "README workflow: upscale Set5 LR then metrics against HR"
$S upscale data/benchmark/Set5/LR_bicubic/X4 -o "$W/results/Set5" --model "$M"; rc
$S metrics "$W/results/Set5" --reference data/benchmark/Set5/HR --scale 4; rc
say "metrics: quoted glob"; $S metrics "$W/results/Set5/b*.png" --scale 4; rc
say "metrics: --no-niqe"; $S metrics "$W/results/Set5" --reference data/benchmark/Set5/HR --scale 4 --no-niqe; rc
say "metrics: --reference folder holding HR/"; $S metrics "$W/results/Set5" --reference data/benchmark/Set5 --scale 4; rc
say "metrics: identical images"; $S metrics data/benchmark/Set5/HR/bird.png --reference data/benchmark/Set5/HR; rc
say "upscale -o into a folder that cannot be created"; : > "$W/afile"
$S upscale data/benchmark/Set5/LR_bicubic/X4 -o "$W/afile/out" --model "$M" 2>&1 | tail -4; echo "[exit ${PIPESTATUS[0]}]"
say "upscale -o into a read-only folder (run as user nobody)"; mkdir -p "$W/ro" "$W/home"; chmod 755 "$W/ro"; chmod 777 "$W/home"
HOME="$W/home" setpriv --reuid=65534 --regid=65534 --clear-groups $S upscale data/benchmark/Set5/LR_bicubic/X4 -o "$W/ro" --model "$M" 2>&1 | tail -4; echo "[exit ${PIPESTATUS[0]}]"
say "upscale -o single.png (one input)"; $S upscale data/benchmark/Set5/LR_bicubic/X4/birdx4.png -o "$W/single.png" --model "$M"; rc
ls -ld "$W/single.png" | cut -c1-10; file "$W/single.png" 2>/dev/null | cut -d: -f2 | head -1; find "$W/single.png" -type f | head -3
say "a PNG as --model"; $S upscale data/benchmark/Set5/LR_bicubic/X4/birdx4.png -o "$W/p" --model data/benchmark/Set5/HR/bird.png 2>&1 | tail -2; echo "[exit ${PIPESTATUS[0]}]"
say "export to ONNX (stderr shown)"; $S export "$M" --format onnx -o "$W/m.onnx" 2>&1 | grep -v "^$" | cut -c1-160; echo "[exit ${PIPESTATUS[0]}]"
say "an ONNX file as --model"; $S upscale data/benchmark/Set5/LR_bicubic/X4/birdx4.png -o "$W/p" --model "$W/m.onnx" 2>&1 | tail -2; echo "[exit ${PIPESTATUS[0]}]"
say "--model bicubic in upscale"; $S upscale data/benchmark/Set5/LR_bicubic/X4/birdx4.png -o "$W/bic" --model bicubic 2>&1 | tail -2; echo "[exit ${PIPESTATUS[0]}]"
$PY - "$W" <<'PYEOF'
import sys, numpy as np
from PIL import Image
w = sys.argv[1]
rng = np.random.default_rng(0)
for name, size in (("small/ref/tiny.png", 6), ("small/out/tiny.png", 6), ("niqe/photo.png", 50)):
    import os; os.makedirs(os.path.dirname(f"{w}/{name}"), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(f"{w}/{name}")
PYEOF
say "image smaller than the crop border"; $S metrics "$W/small/out" --reference "$W/small/ref" --scale 4 2>&1 | tail -2; echo "[exit ${PIPESTATUS[0]}]"
say "image smaller than a NIQE block"; $S metrics "$W/niqe/photo.png" 2>&1 | tail -4; echo "[exit ${PIPESTATUS[0]}]"
say "exit code: missing folder"; $S metrics "$W/nope"; rc
say "exit code: --device cuda without CUDA"; $S upscale data/benchmark/Set5/LR_bicubic/X4/birdx4.png -o "$W/c" --model "$M" --device cuda 2>&1 | tail -1; echo "[exit ${PIPESTATUS[0]}]"
say "export .safetensors: file mode (umask $(umask))"; $S export "$M" --format safetensors -o "$W/m.safetensors" > /dev/null; rc; stat -c "%a %n" "$W/m.safetensors"
say "eval on a terminal: progress lines seen"
script -qc "stty cols 120 rows 40; $S eval --model $M --data data/benchmark/Set5 --scale 4 --no-niqe" /dev/null | tr '\r' '\n' | grep -c "eval x4.*img"
say "upscale of one image on a terminal: tile progress lines seen"
script -qc "stty cols 120 rows 40; $S upscale $W/phone.jpg -o $W/tty --model $M --tile 64 --overwrite" /dev/null | tr '\r' '\n' | grep -c "tile"
