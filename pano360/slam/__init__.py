"""Camera rotation and field-of-view estimation from the video alone (produces a Trajectory)."""
