"""Camera rotation and field-of-view estimation from the video alone (produces a Trajectory).

``estimate_trajectory(path)`` / ``track_clip(path)`` for a video file, ``estimate_rotations(frames,
times, width, height)`` / ``estimate_result(...)`` for frames already in memory or streamed.
"""
