"""Fit the panorama LoRA on Wan2.1 VACE from a folder of 360 videos."""
