"""The convert pipeline: trajectory -> levelling -> orientation -> placement -> fill -> encode -> 360 MP4."""
