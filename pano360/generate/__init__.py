"""Fill the unseen part of the sphere: one interface, two backends (embedded mosaic, Wan2.1 VACE)."""
