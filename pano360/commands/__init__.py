"""One module per CLI command; each keeps heavy imports (torch, diffusers) inside the command body."""
