"""Pretrained super-resolution networks read from PyPI wheels, as PyTorch modules (bench peers)."""
