"""Stage 4: diffusion (schedule, Patch-DiT, prompt encoder, denoiser, PGS sampler, training)."""
