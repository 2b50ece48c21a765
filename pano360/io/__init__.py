"""Input and output at the edges: video decoding/encoding, 360 metadata, atomic output files."""
