"""A phone-style JPEG: the committed photo's pixels stored turned 90 degrees anticlockwise, with EXIF
Orientation = 6 (viewers turn it clockwise to show it upright), a camera make, a capture time and an sRGB ICC profile."""
import sys
from PIL import Image, ImageCms
src, out = sys.argv[1], sys.argv[2]
upright = Image.open(src).convert("RGB")
stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote: sideways
exif = Image.Exif()
exif[0x0112] = 6
exif[0x010F] = "ExamplePhone"
exif.get_ifd(0x8769)[0x9003] = "2024:05:01 12:00:00"
icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
stored.save(out, quality=95, exif=exif, icc_profile=icc)
print(f"{src}: upright {upright.size[0]}x{upright.size[1]}; {out}: stored {stored.size[0]}x{stored.size[1]}, Orientation 6")
