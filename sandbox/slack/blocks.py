"""Block Kit as the sandbox accepts it: parsing, the shape checks Slack makes, the ids
Slack fills in, and finding an interactive element."""

from __future__ import annotations

import copy
import json
from typing import Any

from .common import JsonDict, SandboxError, random_id

MAX_BLOCKS = 50
MAX_MARKDOWN = 12_000  # the text of one ``markdown`` block (what a stream writes into)


def parse_blocks(raw: Any) -> list[JsonDict] | None:
    """Blocks as sent by a client (a list, or a JSON string in form bodies); None if absent.

    Raises ``invalid_blocks`` for anything Slack would reject at the shape level.
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SandboxError("invalid_blocks_format", "blocks is not valid JSON") from exc
    if not isinstance(raw, list):
        raise SandboxError("invalid_blocks_format", "blocks must be an array")
    errors = validate_blocks(raw)
    if errors:
        raise SandboxError("invalid_blocks", "; ".join(errors), extra={"errors": errors})
    blocks = copy.deepcopy(raw)
    assign_ids(blocks)
    return blocks


def _text_object(obj: Any, where: str, *, plain_only: bool, limit: int) -> list[str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return [f"{where} must be a text object"]
    kind = obj.get("type")
    if kind not in ("plain_text", "mrkdwn") or (plain_only and kind != "plain_text"):
        expected = "plain_text" if plain_only else "plain_text or mrkdwn"
        return [f"{where}.type must be {expected}"]
    if not obj["text"] and not plain_only:
        return [f"{where}.text must not be empty"]
    if len(obj["text"]) > limit:
        return [f"{where}.text must be at most {limit} characters"]
    return []


def _element(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        return [f"{where} must be an object with a type"]
    errors: list[str] = []
    action_id = el.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > 255):
        errors.append(f"{where}.action_id must be a string of at most 255 characters")
    if el["type"] == "button":
        errors += _text_object(el.get("text"), f"{where}.text", plain_only=True, limit=75)
        value = el.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            errors.append(f"{where}.value must be a string of at most 2000 characters")
        if el.get("style") not in (None, "primary", "danger"):
            errors.append(f"{where}.style must be primary or danger")
    return errors


def validate_blocks(blocks: list[Any]) -> list[str]:
    """Shape checks for the Block Kit subset the product uses (Slack rejects these too)."""
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"at most {MAX_BLOCKS} blocks are allowed")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"{where} must be an object with a type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                errors.append(f"{where}.block_id must be a string of at most 255 characters")
            elif block_id in block_ids:
                errors.append(f"{where}.block_id {block_id!r} is duplicated")
            else:
                block_ids.add(block_id)
        kind = block["type"]
        if kind == "header":
            errors += _text_object(block.get("text"), f"{where}.text", plain_only=True, limit=150)
        elif kind == "section":
            has_text = "text" in block
            fields = block.get("fields")
            if not has_text and fields is None:
                errors.append(f"{where} needs text or fields")
            if has_text:
                errors += _text_object(block["text"], f"{where}.text", plain_only=False, limit=3000)
            if fields is not None:
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    errors.append(f"{where}.fields must hold 1 to 10 text objects")
                else:
                    for j, f in enumerate(fields):
                        errors += _text_object(
                            f, f"{where}.fields[{j}]", plain_only=False, limit=2000
                        )
            if "accessory" in block:
                errors += _element(block["accessory"], f"{where}.accessory")
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or len(text) > MAX_MARKDOWN:
                errors.append(f"{where}.text must be a string of at most {MAX_MARKDOWN} characters")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"{where}.elements must hold 1 to 10 elements")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(f"{where}.elements must hold 1 to 25 elements")
            else:
                seen: set[str] = set()
                for j, el in enumerate(elements):
                    errors += _element(el, f"{where}.elements[{j}]")
                    aid = el.get("action_id") if isinstance(el, dict) else None
                    if isinstance(aid, str):
                        if aid in seen:
                            errors.append(f"{where}.elements[{j}].action_id {aid!r} is duplicated")
                        seen.add(aid)
    return errors


def assign_ids(blocks: list[JsonDict]) -> None:
    """Give every block a ``block_id`` and every interactive element an ``action_id``.

    Slack does the same for ids the app leaves out, and reports them in block_actions.
    """
    for block in blocks:
        block.setdefault("block_id", random_id("", 5))
        for el in interactive_elements(block):
            el.setdefault("action_id", random_id("", 5))


def interactive_elements(block: JsonDict) -> list[JsonDict]:
    """The interactive elements of one block (actions elements or a section accessory)."""
    found: list[JsonDict] = []
    if block.get("type") == "actions" and isinstance(block.get("elements"), list):
        found += [e for e in block["elements"] if isinstance(e, dict) and e.get("type") != "image"]
    accessory = block.get("accessory")
    if isinstance(accessory, dict) and accessory.get("type") != "image":
        found.append(accessory)
    return found


def find_action(
    blocks: list[JsonDict], action_id: str, block_id: str | None = None
) -> tuple[JsonDict, JsonDict]:
    """The ``(block, element)`` with this action_id (optionally in this block)."""
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        for el in interactive_elements(block):
            if el.get("action_id") == action_id:
                return block, el
    raise SandboxError("action_not_found", f"no element with action_id {action_id!r}")
