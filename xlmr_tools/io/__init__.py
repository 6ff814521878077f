"""Bytes and files: safe torch unpickling, zip tensor offsets, safetensors reading and streamed writing, atomic
output folders, the source digest."""
