#!/bin/bash
# What is new, as a user runs it, after demo.sh with the same scratch dir (it reuses its phone.jpg).
# usage: demo_after.sh <checkout with .venv> <scratch dir> <model.pt> <training checkpoint.pt>
T=$1; W=$2; M=$3; C=$4; S=$T/.venv/bin/srcore; PY=$T/.venv/bin/python
cd "$T" || exit 1
mkdir -p "$W"
say() { echo; echo "### $*"; }
rc() { echo "[exit $?]"; }
say "upscale the phone photo to x2 JPEG, quality 90"
$S upscale "$W/phone.jpg" -o "$W/phone_x2.jpg" --model "$M" --outscale 2 --quality 90; rc
$PY -c "from PIL import Image; im = Image.open('$W/phone_x2.jpg'); print(im.format, im.size, 'Orientation', im.getexif().get(0x0112), 'ICC', len(im.info.get('icc_profile', b'')))"
say "upscale to WebP with -o as a file"; $S upscale data/benchmark/Set5/LR_bicubic/X4/birdx4.png -o "$W/bird.webp" --model "$M"; rc
say "srcore info"; $S info "$M"; rc
say "export --layout basicsr of the model"; $S export "$M" -o "$W/net_g.pth" --layout basicsr; rc
say "export --layout basicsr of a training checkpoint"; $S export "$C" -o "$W/net_g.pth" --layout basicsr; rc
say "srcore info of an ONNX export"; $S export "$M" -o "$W/m2.onnx" > /dev/null; $S info "$W/m2.onnx" | grep -v "^card_version"; rc
say "eval --save-images, then metrics on the saved images"
$S eval --model "$M" --data data/benchmark/Set5 --scale 4 --no-niqe --save-images "$W/evalsr" --quiet; rc
$S metrics "$W/evalsr" --reference data/benchmark/Set5 --scale 4 --no-niqe; rc
say "eval tiled in bf16"; $S eval --model "$M" --data data/benchmark/Set5 --scale 4 --no-niqe --tile 64 --precision bf16 --quiet; rc
