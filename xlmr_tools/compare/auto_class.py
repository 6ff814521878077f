"""convert's guard on its own output: what `AutoModel*.from_pretrained` would build from the written folder — its
class, every tensor loaded from the files, nothing initialised, nothing left over — decided by the load view
(sources.loaded) on the meta device, so it costs nothing even for XXL."""

from __future__ import annotations

from xlmr_tools.errors import BadInput, VerificationFailed
from xlmr_tools.sources.hf import HFFolder
from xlmr_tools.sources.loaded import LoadedModel, load_view, task_of


def check_auto_class(folder: HFFolder, head: str | None, expected_class: str) -> LoadedModel:
    """The load view of `folder`, refused unless AutoModel* builds `expected_class` and loads exactly the folder's
    tensors into it (a shape transformers would refuse: BadInput, what cannot be represented, exit 2)."""
    loaded = load_view(folder, task_of(head))
    if loaded.model_class != expected_class:
        raise VerificationFailed(folder.path, f"AutoModel* would build {loaded.model_class}, not {expected_class}")
    if loaded.mismatched:
        name, have, want = loaded.mismatched[0]
        raise BadInput(
            folder.path,
            f"cannot be represented in transformers: {expected_class} expects {name} of shape {want}, the "
            f"checkpoint gives {have}",
        )
    if loaded.missing or loaded.unexpected or loaded.problems:
        raise VerificationFailed(
            folder.path,
            f"transformers would report missing {loaded.missing[:3]} / unexpected {loaded.unexpected[:3]} keys for "
            f"{expected_class}" + (f"; {loaded.problems[0]}" if loaded.problems else ""),
        )
    return loaded
