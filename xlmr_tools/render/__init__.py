"""Renderers: the operations' plain reports (their `to_dict()` and rows) as people read them — the terminal's tables
and lines, the HTML report, the output folder's model card. They import only the base modules and io (no torch, no
model objects), so both the CLI and ops.convert (the model card goes into the folder before it is published) use
them."""
