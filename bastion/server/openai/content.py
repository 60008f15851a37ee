"""Message content at the edge: a string, null, or OpenAI content parts.

Text parts are joined into the message's text. Parts that are more than text — an
image (`image_url`), audio (`input_audio`), a file (`file`) — are checked here, naming
the field at fault, and kept as sent in `Message.parts`, so an OpenAI-compatible
upstream receives them unchanged and an Anthropic one gets its own blocks for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.server.errors import invalid

_DETAILS = frozenset({"auto", "low", "high"})
_AUDIO_FORMATS = frozenset({"wav", "mp3"})


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field, "must be an object")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(field, "must be a non-empty string")
    return value


def _image(part: Mapping[str, Any], where: str) -> None:
    image = _object(part.get("image_url"), f"{where}.image_url")
    url = _string(image.get("url"), f"{where}.image_url.url")
    if not url.startswith(("https://", "http://", "data:image/")) or (
        url.startswith("data:") and ";base64," not in url
    ):
        raise invalid(
            f"{where}.image_url.url", "must be an http(s) URL or a base64 data:image/ URL"
        )
    detail = image.get("detail")
    if detail is not None and (not isinstance(detail, str) or detail not in _DETAILS):
        raise invalid(f"{where}.image_url.detail", "must be one of auto, high, low")


def _audio(part: Mapping[str, Any], where: str) -> None:
    audio = _object(part.get("input_audio"), f"{where}.input_audio")
    _string(audio.get("data"), f"{where}.input_audio.data")
    audio_format = audio.get("format")
    if not isinstance(audio_format, str) or audio_format not in _AUDIO_FORMATS:
        raise invalid(f"{where}.input_audio.format", "must be one of mp3, wav")


def _file(part: Mapping[str, Any], where: str) -> None:
    file = _object(part.get("file"), f"{where}.file")
    if file.get("file_data") is None and file.get("file_id") is None:
        raise invalid(f"{where}.file", "needs file_data or file_id")
    for key in ("file_data", "file_id", "filename"):
        if file.get(key) is not None:
            _string(file[key], f"{where}.file.{key}")


_CHECKS = {"image_url": _image, "input_audio": _audio, "file": _file}


def read_content(value: Any, field: str) -> tuple[str | None, tuple[Mapping[str, Any], ...]]:
    """The text of a message's content and, when it holds more than text, its parts;
    ApiError(400) naming the field at fault."""
    if value is None or isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise invalid(field, "must be a string, an array of content parts, or null")
    texts: list[str] = []
    richer = False
    for index, part in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(part, dict):
            raise invalid(where, "a content part must be an object")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid(f"{where}.text", "must be a string")
            texts.append(text)
            continue
        check = _CHECKS.get(kind) if isinstance(kind, str) else None
        if check is None:
            raise invalid(f"{where}.type", "must be one of text, image_url, input_audio, file")
        check(part, where)
        richer = True
    return "".join(texts), tuple(value) if richer else ()
