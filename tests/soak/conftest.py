"""The soak test starts the real server as the integration tests do: it
takes their fixtures (inferd_bin, from INFERD_BUILD_DIR) and helpers
(server_fixtures) rather than keeping copies of them."""
import importlib.util
import sys
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_INTEGRATION))

_spec = importlib.util.spec_from_file_location("integration_conftest", _INTEGRATION / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)

pytest_configure = _integration.pytest_configure
repo_root = _integration.repo_root
build_dir = _integration.build_dir
inferd_bin = _integration.inferd_bin
