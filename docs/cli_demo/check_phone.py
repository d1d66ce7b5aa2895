"""Compare an upscaled phone photo with the upright source: size, EXIF, ICC, and a 64x64 crop (top-left
of the upright view) after MATLAB-bicubic downscaling the output by 4, against the upright and the sideways source."""
import sys
import numpy as np
import torch
from PIL import Image
from srcore.resize import imresize
src, out = sys.argv[1], sys.argv[2]
upright = np.asarray(Image.open(src).convert("RGB")).astype(np.float64)
sideways = np.rot90(upright, 1)  # the stored pixels, as a viewer ignoring EXIF shows them
im = Image.open(out)
e = im.getexif()
print(f"output {out}: {im.size[0]}x{im.size[1]} {im.mode}; EXIF Orientation {e.get(0x0112)}, Make {e.get(0x010F)}, "
      f"DateTimeOriginal {e.get_ifd(0x8769).get(0x9003)}; ICC {'kept' if im.info.get('icc_profile') else 'absent'} "
      f"({len(im.info.get('icc_profile') or b'')} bytes)")
o = torch.from_numpy(np.asarray(im.convert("RGB")).astype(np.float64)).permute(2, 0, 1) / 255
small = (imresize(o, scale=0.25).clamp(0, 1).permute(1, 2, 0).numpy() * 255)
def crop_psnr(ref):
    if ref.shape != small.shape:
        return f"shape {small.shape[1]}x{small.shape[0]} vs {ref.shape[1]}x{ref.shape[0]}: different orientation"
    a, b = small[:64, :64], ref[:64, :64]
    return f"top-left 64x64 crop PSNR {10 * np.log10(255**2 / np.mean((a - b) ** 2)):.2f} dB"
print(f"  against the upright photo ({upright.shape[1]}x{upright.shape[0]}): {crop_psnr(upright)}")
print(f"  against the sideways pixels ({sideways.shape[1]}x{sideways.shape[0]}): {crop_psnr(sideways)}")
