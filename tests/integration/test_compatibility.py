"""docs/compatibility.md keeps up with the code: every flag `inferd serve
--help` prints, and every configuration field the parser knows (the rows of
its field tables, the fields it reads by hand, and its lists of fields it
ignores with a warning), appears there in backquotes."""
import re
from pathlib import Path

from server_fixtures import run_inferd_command

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"


def quoted(text):
    return set(re.findall(r"`([^`]+)`", text))


def test_every_serve_flag_is_listed(inferd_bin):
    out = run_inferd_command(inferd_bin, "serve", "--help", timeout=60).stdout
    flags = {m.group(1) for m in re.finditer(r"^  (--[a-z0-9-]+)", out, re.M)} - {"--help"}
    assert len(flags) > 40, out
    missing = sorted(flags - quoted(DOC.read_text()))
    assert not missing, f"flags of `inferd serve --help` missing from {DOC.name}: {missing}"


def parser_fields():
    src = (ROOT / "src" / "server" / "model_config_read.c").read_text()
    fields = set(re.findall(r'(?:SCALAR|ENUM)\(\w+, "(\w+)"', src))  # table rows
    fields |= set(re.findall(r'(?:READ|EACH)\("(\w+)"', src))
    fields |= set(re.findall(r'\.name = "(\w+)"', src))
    fields |= set(re.findall(r'strcmp\((?:n->name|c->name|f), "(\w+)"\)', src))  # read by hand
    for block in re.findall(r"ignored\[\] = \{([^}]*)\}", src):
        fields |= set(re.findall(r'"(\w+)"', block))
    return fields


def test_every_config_field_is_listed():
    fields = parser_fields()
    assert {"max_batch_size", "dynamic_batching", "rate_limiter", "num_versions", "zero_data"} <= fields, sorted(fields)
    missing = sorted(fields - quoted(DOC.read_text()) - {"key", "value"})
    assert not missing, f"configuration fields the parser knows missing from {DOC.name}: {missing}"
