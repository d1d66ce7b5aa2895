"""srcore: the library behind the SRGAN/ESRGAN pipeline.

Images are float tensors in [0, 1], RGB, (C, H, W) or (B, C, H, W) at every boundary; uint8 only on disk.
"""
