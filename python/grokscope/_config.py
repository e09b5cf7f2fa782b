"""Configs: a preset name, a TOML file, a dict or a `Config`, plus keyword overrides."""

import json
import math
import os
from typing import Any, Dict, List, Union

from . import _native
from ._native import GrokscopeError

#: The phases of SCIENCE.md §5, in the order of the paper's table (from the library).
PHASES: List[str] = list(_native.phases())

#: What a config can be given as: a preset name, a TOML path, a dict of sections or a
#: `Config` (None: the default experiment).
ConfigLike = Union[str, "os.PathLike[str]", Dict[str, Any], "Config", None]


def presets() -> Dict[str, str]:
    """The configs shipped with grokscope (name → TOML text): ``default``, the paper's
    (configs/paper/) and those on real data (configs/real/)."""
    return dict(_native.presets())


def toml_value(v: Any) -> str:
    """A Python value as a TOML value (what ``--set KEY=VALUE`` takes)."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy scalars and arrays
        v = v.tolist()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise GrokscopeError(f"{v!r}: a config value must be a number, string, bool, list or dict")


def toml_key(k: Any) -> str:
    """A key as TOML writes it: bare when it can be, else quoted (never new syntax)."""
    k = str(k)
    if k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k):
        return k
    return json.dumps(k, ensure_ascii=False)


def dict_to_toml(d: Dict[str, Any]) -> str:
    """A nested dict as TOML text: scalars at the top, then one table per dict. A key with
    dots at the top of a table (``{"base": {"data.p": 23}}``) stays one dotted key."""
    lines: List[str] = []
    tables: List[str] = []

    def dotted(k: Any) -> str:
        return ".".join(toml_key(part) for part in str(k).split("."))

    def table(prefix: str, t: Dict[str, Any]) -> None:
        body = []
        for k, v in t.items():
            if isinstance(v, dict):
                table(f"{prefix}.{toml_key(k)}", v)
            else:
                body.append(f"{dotted(k)} = {toml_value(v)}")
        tables.append(f"[{prefix}]\n" + "\n".join(body))

    if not isinstance(d, dict):
        raise GrokscopeError(f"{d!r}: expected a dict of config sections")
    for k, v in d.items():
        if isinstance(v, dict):
            table(toml_key(k), v)
        else:
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
    return "\n".join(lines) + "\n\n" + "\n\n".join(tables) + "\n"


def override_key(k: str) -> str:
    """``train__weight_decay`` → ``train.weight_decay`` (keyword arguments cannot hold dots)."""
    return k.replace("__", ".")


class Config:
    """A config: TOML text plus ``KEY=VALUE`` overrides, checked by grokscope when resolved.

    ``Config("default")``, ``Config("grokking")`` (a preset), ``Config("my.toml")``,
    ``Config({"data": {"p": 23}})``; overrides as keywords (``train__weight_decay=[0, 5]``) or
    with dotted keys (``**{"train.weight_decay": [0, 5]}``).
    """

    text: str  #: the TOML text
    origin: str  #: where the text came from (for error messages)
    sets: List[str]  #: the overrides, ``KEY=VALUE`` with TOML values

    def __init__(self, source: ConfigLike = None, **overrides: Any) -> None:
        self.sets = []
        if source is None:
            source = "default"
        if isinstance(source, Config):
            self.text, self.origin, self.sets = source.text, source.origin, list(source.sets)
        elif isinstance(source, dict):
            self.text, self.origin = dict_to_toml(source), "the config dict"
        elif isinstance(source, (str, os.PathLike)):
            s = os.fspath(source)
            known = presets()
            name = s[len("paper/"):] if s.startswith("paper/") else s
            if name.endswith(".toml") and name[: -len(".toml")] in known and not os.path.exists(s):
                name = name[: -len(".toml")]
            if os.path.isfile(s):
                try:
                    with open(s, encoding="utf-8") as f:
                        self.text, self.origin = f.read(), s
                except (OSError, UnicodeDecodeError) as e:
                    raise GrokscopeError(f"{s}: cannot read the config: {e}") from None
            elif name in known:
                self.text, self.origin = known[name], f"preset {name}"
            else:
                raise GrokscopeError(
                    f"{s}: neither a config file nor a preset (presets: {', '.join(sorted(known))})"
                )
        else:
            raise GrokscopeError(
                f"{source!r}: a config is a preset name, a TOML path, a dict or a grokscope.Config"
            )
        for k, v in overrides.items():
            self.sets.append(f"{override_key(k)}={toml_value(v)}")

    def set(self, **overrides: Any) -> "Config":
        """A copy with more overrides."""
        return Config(self, **overrides)

    def resolved(self) -> Dict[str, Any]:
        """The checked config with every default filled in (raises GrokscopeError)."""
        return json.loads(_native.resolve(self.text, self.sets, self.origin))

    def __repr__(self) -> str:
        sets = "".join(f", {s}" for s in self.sets)
        return f"Config({self.origin}{sets})"


def as_config(config: ConfigLike, overrides: Dict[str, Any]) -> Config:
    return Config(config, **overrides)
