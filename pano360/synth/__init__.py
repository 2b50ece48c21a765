"""Synthetic phone clips filmed inside real panoramas along known camera paths (ground truth)."""
