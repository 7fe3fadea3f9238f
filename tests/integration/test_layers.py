"""The layers' arrows point down, checked two ways: over the sources'
#include lines, and over the built objects' symbols (what each layer's
objects leave undefined must be defined by the layer itself, a layer below
it, or outside inferd). Each layer is a CMake target of its own
(CMakeFiles/inferd_<layer>.dir); generated protobuf code belongs to the
layer whose .proto it comes from.

base at the bottom; engine on base; server on engine; metrics on server.
The frontends and tools see base and the public C API (include/inferd.h,
the inferd_* functions, wherever they are defined); tools also read the
gRPC messages generated in frontends (the load generator speaks them). The
CLI, at the top, may use everything."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["base", "engine", "server", "metrics", "frontends", "tools"]
BELOW = {
    "base": set(),
    "engine": {"base"},
    "server": {"engine", "base"},
    "metrics": {"server", "engine", "base"},
    "frontends": {"base"},
    "tools": {"base"},
    "cli": set(LAYERS),
}
PUBLIC_API_USERS = {"frontends", "tools", "cli"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"', re.M)


def layer_includes():
    """(file, line text, layer included) for every quoted include of another layer."""
    for layer in BELOW:
        for path in sorted((ROOT / "src" / layer).rglob("*")):
            if path.suffix not in (".c", ".h", ".cu"):
                continue
            for m in INCLUDE.finditer(path.read_text(errors="replace")):
                if m.group(1) != layer:
                    yield path.relative_to(ROOT), m.group(0).strip(), m.group(1), m.group(2)


def test_includes_point_down():
    wrong = []
    for path, line, target, rest in layer_includes():
        layer = path.parts[1]
        if target in BELOW[layer]:
            continue
        if layer == "tools" and target == "frontends" and rest.endswith(".pb-c.h"):
            continue  # the gRPC messages the load generator sends
        wrong.append(f"{path}: {line} ({layer} may include {sorted(BELOW[layer]) or 'no other layer'})")
    assert not wrong, "includes pointing up or sideways:\n" + "\n".join(wrong)


def test_the_rules_cover_every_layer():
    present = {p.name for p in (ROOT / "src").iterdir() if p.is_dir()}
    assert present == set(BELOW), f"layers in src/ {sorted(present)} against the rules' {sorted(BELOW)}"


def nm(objects, *flags):
    out = subprocess.run(["nm", "-P", *flags, *map(str, objects)], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line and not line.endswith(":")]


def objects_of(build_dir, layer):
    objs = sorted((build_dir / "CMakeFiles" / f"inferd_{layer}.dir").rglob("*.o"))
    objs += sorted((build_dir / "CMakeFiles" / "inferd_proto.dir").rglob(f"gen/{layer}/**/*.o"))
    return objs


def test_symbols_point_down(build_dir):
    if not (build_dir / "CMakeFiles" / "inferd_base.dir").is_dir():
        pytest.fail(f"{build_dir} has no per-layer targets (CMakeFiles/inferd_base.dir): rebuild it")
    defined_in, generated = {}, set()
    for layer in LAYERS:
        objs = objects_of(build_dir, layer)
        assert objs, f"no objects for layer {layer} under {build_dir}"
        for sym in nm(objs, "--defined-only", "-g"):
            defined_in.setdefault(sym, layer)
        gen = [o for o in objs if "inferd_proto.dir" in str(o)]
        if gen:
            generated.update(nm(gen, "--defined-only", "-g"))
    wrong = []
    for layer in LAYERS:
        for sym in sorted(set(nm(objects_of(build_dir, layer), "-u"))):
            owner = defined_in.get(sym)
            if owner is None or owner == layer or owner in BELOW[layer]:
                continue
            if layer in PUBLIC_API_USERS and sym.startswith("inferd_"):
                continue
            if layer == "tools" and owner == "frontends" and sym in generated:
                continue
            wrong.append(f"{layer} uses {sym} of {owner}")
    assert not wrong, "symbols used against the layers' order:\n" + "\n".join(wrong)
