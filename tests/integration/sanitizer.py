"""The integration tests against the ASan+UBSan build (build-asan): how a
sanitizer report of any inferd process fails the test that caused it, and how
much longer the tests wait for a build that runs about three times slower.

Where reports go. AddressSanitizer and LeakSanitizer write their reports to
files when ASAN_OPTIONS names a log_path; pytest_configure (conftest.py) sets
one in a folder of its own, so every inferd process the tests start, however
it is started, leaves `report.<pid>` there when it has something to say: a
memory error, or leaks found at exit (or a mere warning, which is not a
report: only files with a report's marker count). UndefinedBehaviorSanitizer does not
follow: with GCC its runtime is a second library whose report path cannot be
set from the environment, so its "runtime error:" reports stay on stderr,
and every place that starts inferd looks for them there (check_output).

Who fails. A report file of a known process (a Server's, a CLI run's) fails
the test that ran it as soon as the process ends; any other report file
fails the test during which it appeared (an autouse fixture in conftest.py
compares the folder before and after each test, after that test's own
fixtures have stopped their servers); the session's end fails the run for
any report no test claimed (a server of a module-scoped fixture stopped
after its module's last test).
"""
import os
import re
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What a sanitizer report contains, whatever the sanitizer: AddressSanitizer
# errors (SEGV included), leaks, and undefined behaviour.
MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def build_dir() -> Path:
    return Path(os.environ.get("INFERD_BUILD_DIR", REPO / "build")).resolve()


def build_is_sanitized(folder: Path | None = None) -> bool:
    """Whether the build tree was configured with -DINFERD_ASAN=ON."""
    cache = (folder or build_dir()) / "CMakeCache.txt"
    try:
        return re.search(r"^INFERD_ASAN:BOOL=(ON|TRUE|1|YES)$", cache.read_text(errors="replace"),
                         re.MULTILINE | re.IGNORECASE) is not None
    except OSError:
        return False


SANITIZED = build_is_sanitized()


def time_factor() -> float:
    """How many times longer than on the release build a test waits before
    it calls something a hang: INFERD_TEST_TIME_FACTOR if set, else 3 for a
    sanitizer build and 1 otherwise. inferd's own code runs about 2-3x
    slower under ASan (the zoo ResNet-50 loads in 420 ms against 215), the
    uninstrumented oneDNN kernels do not; the factor leaves room for a
    loaded machine. Bounds only ever grow with it; no test waits for a time."""
    value = os.environ.get("INFERD_TEST_TIME_FACTOR")
    if value:
        factor = float(value)
        if factor < 1:
            raise ValueError(f"INFERD_TEST_TIME_FACTOR={value}: must be at least 1")
        return factor
    return 3.0 if SANITIZED else 1.0


TIME_FACTOR = time_factor()


def scaled(seconds: float) -> float:
    """A wait bound (seconds) stretched for the build under test."""
    return seconds * TIME_FACTOR


def report_in(text: str) -> str | None:
    """The part of a process's output from its first sanitizer report on, or None."""
    positions = [i for i in (text.find(m) for m in MARKERS) if i >= 0]
    if not positions:
        return None
    start = text.rfind("\n", 0, min(positions)) + 1
    return text[start:]


def check_output(what: str, text: str) -> None:
    """Fails (AssertionError) when `text`, the output of `what`, holds a sanitizer report."""
    report = report_in(text or "")
    if report is not None:
        raise AssertionError(f"{what} reported a sanitizer error:\n{report[:8000]}")


class ReportFolder:
    """The folder ASan and LSan write their reports to, one file a process."""

    PREFIX = "report"

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="inferd-sanitizer-"))
        self.claimed = set()

    def install(self, environ) -> None:
        """Points ASan at this folder in `environ` (os.environ: every process
        the tests start inherits it). A client-sized allocation that cannot be
        had returns NULL, as without ASan, rather than ending the process: the
        server must answer it (mem_try_*), as the fuzz targets also check."""
        options = environ.get("ASAN_OPTIONS", "")
        extra = [f"log_path={self.path / self.PREFIX}"]
        if "allocator_may_return_null" not in options:
            extra.append("allocator_may_return_null=1")
        environ["ASAN_OPTIONS"] = ":".join([o for o in [options] if o] + extra)

    def files(self) -> set:
        """The report files that hold a report. ASan also writes warnings
        there that are no fault: with allocator_may_return_null=1, "failed
        to allocate" for a size the server then refuses."""
        return {p for p in self.path.glob(f"{self.PREFIX}.*")
                if p.is_file() and report_in(p.read_text(errors="replace")) is not None}

    def unclaimed(self) -> set:
        return self.files() - self.claimed

    def claim(self, files) -> str:
        """The reports in `files`, marked as reported so no later check repeats them."""
        texts = []
        for f in sorted(files):
            self.claimed.add(f)
            texts.append(f"--- {f.name} (process {f.suffix[1:]}) ---\n{f.read_text(errors='replace')}")
        return "\n".join(texts)

    def claim_process(self, pid: int) -> str | None:
        """The report of process `pid` if it wrote one and no check has reported it yet."""
        f = self.path / f"{self.PREFIX}.{pid}"
        if f in self.claimed or f not in self.files():
            return None
        return self.claim([f])


# Set by conftest.pytest_configure on a sanitizer build; None otherwise.
reports: ReportFolder | None = None


def check_process(what: str, pid: int, output: str | None = "") -> None:
    """Fails when the ended process `pid` (`what`) left a sanitizer report,
    in its report file or in its output."""
    check_output(what, output or "")
    if reports is not None:
        text = reports.claim_process(pid)
        if text is not None:
            raise AssertionError(f"{what} reported a sanitizer error:\n{text[:8000]}")


def environment_for_rss_bounds() -> dict | None:
    """The environment for a server whose resident memory a test bounds:
    on a sanitizer build, ASan's quarantine is turned off. ASan keeps up to
    256 MiB of freed blocks unusable to catch use-after-free, so RSS would
    count memory the server has already freed (measured: +340 MB for the
    gRPC stream of 2000 unread requests, +2 MB without the quarantine, as on
    the release build). Every other ASan and UBSan check stays on. None (the
    tests' own environment) otherwise."""
    if not SANITIZED:
        return None
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(o for o in [env.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
                                              "thread_local_quarantine_size_kb=0"] if o)
    return env
