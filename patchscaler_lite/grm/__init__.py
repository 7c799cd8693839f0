"""Stage 1: the Global Restoration Module (model + confidence loss, pairs, training, calibration)."""
