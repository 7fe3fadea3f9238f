"""The embeddable library as an embedder meets it: libinferd.so exports the
public API and nothing else, under a versioned SONAME; libinferd.a keeps
every other symbol local; examples/embed (include/inferd.h and the shared
library alone) serves a repository in-process; and `cmake --install` puts
the binary, libraries, header and inferd.pc where a program built with
pkg-config, shared or static, finds them."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sanitizer import REPO, build_dir, build_is_sanitized, check_output
from server_fixtures import add_sub_graph, simple_config, write_model

API_MAJOR = int(re.search(r"#define INFERD_API_VERSION_MAJOR (\d+)", (REPO / "include/inferd.h").read_text()).group(1))
# Every INFERD_API declaration of the header: what the library must export.
DECLARED = set(re.findall(r"^INFERD_API [^(]*?\b(inferd_\w+)\(", (REPO / "include/inferd.h").read_text(), re.M))


def _defined_symbols(args):
    """(type, name) of each defined symbol nm lists."""
    out = subprocess.run(["nm", "--defined-only", *args], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line and not line.endswith(":")]
    return [(f[-2], f[-1].split("@")[0]) for f in rows if len(f) >= 2]  # the name without its version


@pytest.fixture(scope="module")
def simple_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("embed") / "models"
    write_model(repo, "simple", add_sub_graph(), simple_config())
    return repo


def test_shared_library_exports_the_public_api_alone():
    lib = build_dir() / "libinferd.so"
    assert lib.exists(), f"{lib} was not built"
    exported = _defined_symbols(["-D", str(lib)])
    strays = [(t, n) for t, n in exported if not n.startswith("inferd_") and not (t == "A" and n == f"INFERD_{API_MAJOR}")]
    assert not strays, f"libinferd.so exports {len(strays)} symbols outside the API: {strays[:20]}"
    names = {n for t, n in exported if t in "TW"}
    assert DECLARED - names == set(), f"declared in inferd.h but not exported: {sorted(DECLARED - names)}"
    assert names - DECLARED == set(), f"exported but not declared in inferd.h: {sorted(names - DECLARED)}"
    soname = subprocess.run(["objdump", "-p", str(lib)], capture_output=True, text=True, check=True).stdout
    assert re.search(rf"SONAME\s+libinferd\.so\.{API_MAJOR}\b", soname), soname


def test_static_library_keeps_internal_symbols_local():
    lib = build_dir() / "libinferd.a"
    assert lib.exists(), f"{lib} was not built"
    symbols = _defined_symbols([str(lib)])
    global_ = [n for t, n in symbols if t.isupper()]
    strays = [n for n in global_ if not n.startswith("inferd_")]
    assert not strays, f"libinferd.a has {len(strays)} global symbols outside the API: {strays[:20]}"
    assert DECLARED <= set(global_), sorted(DECLARED - set(global_))
    # The internals are there, local: the archive is the whole core.
    assert any(n == "err_new" and t.islower() for t, n in symbols)


def test_embed_example_serves_in_process(simple_repo):
    example = build_dir() / "examples" / "embed"
    proc = subprocess.run([str(example), str(simple_repo)], capture_output=True, text=True, timeout=300)
    check_output("embed", proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OUTPUT0[15] = 15 + 1 = 16" in proc.stdout and "OUTPUT1[3] = 3 - 1 = 2" in proc.stdout, proc.stdout
    assert f"(API {API_MAJOR}." in proc.stdout and proc.stdout.rstrip().endswith("ok"), proc.stdout


def test_embed_example_names_a_missing_model(simple_repo):
    example = build_dir() / "examples" / "embed"
    proc = subprocess.run([str(example), str(simple_repo), "absent"], capture_output=True, text=True, timeout=300)
    check_output("embed", proc.stdout + proc.stderr)
    assert proc.returncode == 1
    assert "absent" in proc.stderr, proc.stderr


@pytest.mark.skipif(build_is_sanitized(), reason="a program built without the sanitizers cannot load the "
                    "sanitized library (the ASan runtime must come first): the release tree checks the install")
@pytest.mark.parametrize("link", ["shared", "static"])
def test_installed_library_builds_with_pkg_config(tmp_path, simple_repo, link):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(build_dir()), "--prefix", str(prefix)], check=True,
                   capture_output=True, text=True)
    for f in ("bin/inferd", "include/inferd.h"):
        assert (prefix / f).exists(), f
    pcs = list(prefix.glob("lib*/**/pkgconfig/inferd.pc"))
    assert len(pcs) == 1, pcs
    libdir = pcs[0].parent.parent
    assert (libdir / f"libinferd.so.{API_MAJOR}").exists() and (libdir / "libinferd.a").exists()
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *(["--static"] if link == "static" else []), "inferd"],
                           capture_output=True, text=True, check=True, env=env).stdout.split()
    if link == "static":
        # The archive named whole, so the shared library beside it is not taken instead.
        flags = [str(libdir / "libinferd.a") if f == "-linferd" else f for f in flags]
    exe = tmp_path / "embed"
    cc = shutil.which("cc") or "gcc"
    built = subprocess.run([cc, "-std=c17", "-Wall", "-Wextra", "-Werror", str(REPO / "examples/embed/embed.c"),
                            "-o", str(exe), *flags, "-pthread"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    needed = subprocess.run(["objdump", "-p", str(exe)], capture_output=True, text=True, check=True).stdout
    assert (f"libinferd.so.{API_MAJOR}" in needed) == (link == "shared"), needed
    run_env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    proc = subprocess.run([str(exe), str(simple_repo)], capture_output=True, text=True, timeout=300, env=run_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("ok"), proc.stdout
