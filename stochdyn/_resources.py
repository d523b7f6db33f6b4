"""Where the model cards (``models/``) and studies (``analyses/``) are.

An installed stochdyn carries them inside the package as ``stochdyn/_data/models`` and
``stochdyn/_data/analyses`` (copied there by the build step in ``setup.py``); a source checkout or
an editable install reads the repository's own folders. ``stochdyn run NAME`` and ``stochdyn
reproduce`` find them by name through this module.
"""

from __future__ import annotations

from pathlib import Path

from ._validation import ValidationError

__all__ = ["shipped_folder", "model_cards", "find_spec_file", "studies_folder"]

_PACKAGE = Path(__file__).resolve().parent


def shipped_folder(kind: str) -> Path | None:
    """The folder holding the shipped ``kind`` ("models" or "analyses"), or None if there is none."""
    packaged = _PACKAGE / "_data" / kind
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent  # a source checkout: the folder holding pyproject.toml and stochdyn/
    if (checkout / "pyproject.toml").is_file() and (checkout / kind).is_dir():
        return checkout / kind
    return None


def model_cards() -> dict[str, Path]:
    """The shipped model cards by name (``{"double_well": Path(".../double_well.toml"), ...}``)."""
    folder = shipped_folder("models")
    return {} if folder is None else {p.stem: p for p in sorted(folder.glob("*.toml"))}


def find_spec_file(spec: str | Path) -> Path:
    """A spec file given by path, or the name of a shipped model card (``double_well`` or
    ``double_well.toml``). An existing file always wins; a missing path with folders in it is
    returned unchanged, for the spec loader to report."""
    path = Path(spec)
    if path.is_file() or len(path.parts) != 1:
        return path
    name = path.stem if path.suffix == ".toml" else path.name
    cards = model_cards()
    if name in cards:
        return cards[name]
    known = ", ".join(cards) or "none (stochdyn was installed without its model cards)"
    raise ValidationError(f"No spec file {str(spec)!r} here, and no model card of that name; model cards: {known}.")


def studies_folder() -> Path:
    """The folder of the shipped studies (``analyses/``)."""
    folder = shipped_folder("analyses")
    if folder is None:
        raise ValidationError("stochdyn was installed without its studies: pass --studies DIR (studies_dir=...).")
    return folder
