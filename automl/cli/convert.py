"""`automl convert`: an NNI config file as automl's own config, or an NNI v1 file in NNI's v2 format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError


def add_command(sub: Any) -> None:
    """Register `automl convert` on the main parser's subcommands."""
    convert = sub.add_parser("convert", help="print an NNI config (v1 or v2) as automl's config or as NNI v2")
    convert.add_argument("config", help="an NNI config file (YAML or JSON, NNI's v1 or v2 format)")
    convert.add_argument(
        "--to",
        choices=("automl", "nni"),
        default="automl",
        help="automl: automl's own config (default); nni: NNI's v2 format",
    )
    convert.set_defaults(handler=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    import yaml

    from ..config.model import _looks_like_nni, _read_mapping

    path = Path(args.config)
    raw = _read_mapping(path)
    if not _looks_like_nni(raw):
        raise UserError(
            f"{path}: not an NNI config (it has none of trialCommand, trainingService, "
            "trainingServicePlatform, trialConcurrency); automl's own configs need no conversion"
        )
    converted, header, warnings = (_to_nni if args.to == "nni" else _to_automl)(raw, path)
    for warning in warnings:
        print(f"automl: warning: {warning}", file=sys.stderr)
    print(header)
    print(yaml.safe_dump(converted, sort_keys=False, allow_unicode=True), end="")
    return 0


def _to_nni(raw: dict[str, Any], path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """The v2 form of a v1 file (a v2 file as it is), with a header comment; refused if automl cannot run it."""
    from ..config.nni import is_v1, translate, v1_to_v2

    if not is_v1(raw):
        translate(raw, str(path))
        return raw, f"# {path} is already in NNI's v2 format", [f"{path}: already NNI's v2 format; printed as it is"]
    warnings: list[str] = []
    v2 = v1_to_v2(raw, str(path), warnings)
    translate(v2, f"{path} (NNI v1, converted to v2)")
    return v2, f"# NNI v2 config converted from the v1 file {path}; relative paths are relative to its folder", warnings


def _to_automl(raw: dict[str, Any], path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """Our config for an NNI file, checked as `automl run` would check it (a bad file is a UserError)."""
    from ..config.model import ExperimentConfig, build_config
    from ..config.nni import translate

    translated, warnings = translate(raw, str(path))
    translated.setdefault("name", path.stem)
    build_config(dict(translated), path.parent, str(path))
    translated["objective"] = {key: value for key, value in translated["objective"].items() if key != "mode_from"}
    ours = {field: translated[field] for field in ExperimentConfig.model_fields if field in translated}
    header = (
        f"# automl config translated from the NNI config {path}; relative paths are relative to its folder.\n"
        f"# Run it with: automl run FILE"
    )
    return ours, header, warnings
