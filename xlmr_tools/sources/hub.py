"""A Hugging Face repo id (`facebook/xlm-roberta-xl`, optionally at a `--revision`) as a local folder, resolved by
huggingface_hub: the local cache first, then the Hub (unless offline), and only the files a comparison reads —
config, weights and their index, tokenizer files — never the whole repository.

A path that exists is always a path, and so is anything written as one (`./x`, `../x`, `/x`, `~/x`, more than one
separator, a Windows separator, a `pathlib.Path`): only a name that does not exist and has exactly the `owner/name`
form is a repo id. A typo in a local path is then "no such file or directory", never a download attempt.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from xlmr_tools.errors import BadInput
from xlmr_tools.settings import HubAccess

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What verify, diff and inspect read from an HF folder (sources.hf), and nothing else.
NEEDED_FILES = [
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "pytorch_model-*.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
]


PATH_PREFIXES = ("./", "../", "/", "~")


def is_repo_id(spec: str | Path) -> bool:
    """Whether SPEC names a Hub repository rather than a local path (see the module's rules)."""
    if isinstance(spec, Path):  # a caller that built a Path means a path (and pathlib drops a leading ./)
        return False
    text = str(spec)
    separators = {os.sep, os.altsep or os.sep} - {"/"}
    written_as_path = text.startswith(PATH_PREFIXES) or any(s in text for s in separators)
    return not written_as_path and not Path(text).exists() and REPO_ID.match(text) is not None


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def resolve(
    repo_id: str, revision: str | None = None, token: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The snapshot folder holding the repo's files at `revision` (default: main), from the cache when it is there.
    `token`: for private or gated repos (None: huggingface_hub's own, i.e. HF_TOKEN or the saved login);
    `cache_dir`: the hub cache (None: HF_HUB_CACHE, read now, else huggingface_hub's default)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or None  # read now, not when huggingface_hub loaded

    def download(local_only: bool) -> Path:
        found = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=NEEDED_FILES,
            cache_dir=str(cache_dir) if cache_dir else None,
            local_files_only=local_only,
            token=token,
        )
        return Path(str(found))

    try:
        return download(local_only=True)
    except LocalEntryNotFoundError:
        if _offline():
            raise BadInput(where, "not in the Hugging Face cache, and HF_HUB_OFFLINE is set") from None
    try:
        return download(local_only=False)
    except RevisionNotFoundError:
        raise BadInput(where, f"no revision {revision!r} in this repository") from None
    except RepositoryNotFoundError:
        raise BadInput(where, "no such repository on the Hugging Face Hub (or it is private: log in first)") from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise BadInput(where, f"cannot download it ({str(e).splitlines()[0][:160]})") from None


def local(spec: str | Path, access: HubAccess = HubAccess()) -> Path:
    """SPEC as a local path: itself (`~` expanded), or the cached snapshot of the repo id it names, fetched as
    `access` says. A --revision given with a path is refused (it would be silently ignored)."""
    if is_repo_id(spec):
        return resolve(str(spec), access.revision, access.token, access.cache_dir)
    if access.revision is not None:
        raise BadInput(spec, "--revision applies to a Hugging Face repo id, not to a local path")
    return Path(spec).expanduser()
