"""Fit the panorama LoRA on Wan2.1 VACE from a folder of 360 videos (``pano360 train``).

Modules, one job each: ``videos`` (find the 360 videos, read an ERP clip, stereo to one eye),
``sample`` (the simulated phone inside a clip, put back on the ERP canvas by ``project/``),
``objective`` (latitude weights, shifted noise levels, flow-matching loss), ``cache`` (the pool
of samples as VAE latents + VACE conditioning, prompt embeddings), ``checkpoint`` (save/resume),
``plot`` (the loss curve), ``trainer`` (``TrainConfig``, ``train``: the loop under accelerate).
Submodules import torch lazily; import what you need from them directly.
"""
