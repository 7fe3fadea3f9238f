"""The checks that make a sanitizer report fail the test behind it
(sanitizer.py), tried on a stand-in for a faulty inferd
(sanitizer_probe/probe.c, built here with ASan and UBSan) that leaks, writes
out of bounds or overflows a signed integer on request, or has a huge
allocation refused (no fault). The report-file checks exist only on a
sanitizer build; the output check runs on both."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sanitizer
from server_fixtures import compile_c, run_inferd_command

needs_report_files = pytest.mark.skipif(
    not sanitizer.SANITIZED, reason="report files are set up only for a sanitizer build (INFERD_ASAN=ON)")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A folder whose `inferd` is the probe, built with the sanitizers."""
    return compile_c(Path(__file__).parent / "sanitizer_probe" / "probe.c", tmp_path_factory.mktemp("probe") / "inferd",
                     "-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all")


def test_a_clean_run_passes(probe):
    proc = run_inferd_command(probe, "clean")
    assert proc.returncode == 0 and proc.stdout == "clean\n"


@needs_report_files
def test_a_refused_allocation_is_no_report(probe):
    """malloc of 32 TiB returns NULL (allocator_may_return_null=1, as the
    server's mem_try_* expect); ASan's warning about it fails nothing."""
    proc = run_inferd_command(probe, "huge")
    assert proc.returncode == 0 and proc.stdout == "refused\n", proc.stderr


@needs_report_files
@pytest.mark.parametrize("fault, words", [("leak", "ERROR: LeakSanitizer: detected memory leaks"),
                                          ("overflow", "ERROR: AddressSanitizer: heap-buffer-overflow")])
def test_a_report_in_the_report_file_fails_a_cli_run(probe, fault, words):
    with pytest.raises(AssertionError, match=f"inferd {fault} reported a sanitizer error") as failure:
        run_inferd_command(probe, fault)
    assert words in str(failure.value)


def test_undefined_behaviour_on_stderr_fails_a_cli_run(probe):
    """UBSan reports stay on stderr (GCC's UBSan runtime ignores log_path
    beside ASan's): the output is where they are found."""
    with pytest.raises(AssertionError, match="runtime error: signed integer overflow"):
        run_inferd_command(probe, "undefined")


INNER_TESTS = """
import os, subprocess
import pytest

PROBE = os.environ["SANITIZER_PROBE"]


def test_plain_subprocess_that_leaks():
    subprocess.run([PROBE, "leak"], capture_output=True, timeout=60)


def test_clean():
    subprocess.run([PROBE, "clean"], capture_output=True, timeout=60)
    subprocess.run([PROBE, "huge"], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def leaks_at_teardown():
    yield
    subprocess.run([PROBE, "overflow"], capture_output=True, timeout=60)


def test_with_a_module_fixture(leaks_at_teardown):
    pass
"""


@needs_report_files
def test_reports_of_processes_no_helper_watched_fail_the_test_or_the_run(probe, tmp_path):
    """A session of its own (with this folder's conftest.py as a plugin)
    runs tests whose probe is started with plain subprocess: the report of
    one started by a test fails that test (conftest's autouse fixture), the
    report of one started after a module's last test fails the run
    (pytest_sessionfinish), and a clean test beside them passes."""
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    here = Path(__file__).parent
    env = dict(os.environ, SANITIZER_PROBE=str(probe), PYTHONPATH=str(here))

    def inner_session(*args):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                               "--rootdir", str(tmp_path), *args, str(tmp_path / "test_inner.py")],
                              capture_output=True, text=True, timeout=sanitizer.scaled(120), env=env, cwd=tmp_path)
        return proc.returncode, proc.stdout + proc.stderr

    code, out = inner_session()
    assert code == 1 and "3 passed, 1 error" in out, out
    assert "ERROR test_inner.py::test_plain_subprocess_that_leaks" in out, out
    assert "ERROR: LeakSanitizer" in out.split("ERROR at teardown of test_plain_subprocess_that_leaks")[1], out
    unclaimed = out.split("sanitizer reports no test claimed")[1].split("= ERRORS =")[0]
    assert "heap-buffer-overflow" in unclaimed and "LeakSanitizer" not in unclaimed, out
    # The report after the module's last test alone fails a run whose tests all passed.
    code, out = inner_session("-k", "module_fixture")
    assert code == 1 and "1 passed" in out and "sanitizer reports no test claimed" in out, out
