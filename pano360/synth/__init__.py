"""Synthetic phone clips filmed inside real panoramas along known camera paths (ground truth)."""

from pano360.synth.camera_path import argus_path, frame_times, path_from_euler, phone_path, static_path
from pano360.synth.degrade import HARD, Degradations
from pano360.synth.render import load_erp, relative_trajectory, render_frames, write_clip

__all__ = [
    "frame_times", "path_from_euler", "static_path", "phone_path", "argus_path",
    "Degradations", "HARD",
    "load_erp", "render_frames", "write_clip", "relative_trajectory",
]
