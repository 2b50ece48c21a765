"""Post-production on 360 videos: reframe, stabilise, metrics."""
