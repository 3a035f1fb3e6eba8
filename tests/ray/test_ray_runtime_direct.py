"""A Ray runtime built directly (``Runtime(..., backend="ray", ray_address=...)``) connects itself and
closes what it connected: no ``ray.init`` first, nothing left after ``close``. Its own process, since
a module's cluster fixture would already have connected this one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray]

SCRIPT = """
import json, ray
from tuner.runtime import Runtime

rt = Runtime("builtin:sleep", backend="ray", ray_address="local", workers=1, partition_size=8)
built = ray.is_initialized()  # nothing connects before the runtime starts
with rt:
    started = ray.is_initialized()
    out = list(rt.map(range(40)))
print(json.dumps({"built": built, "started": started, "after": ray.is_initialized(), "out": out}))
"""


@pytest.mark.timeout(150)
def test_a_runtime_built_directly_connects_to_a_local_head_and_stops_it(clean_env: dict[str, str]) -> None:
    pytest.importorskip("ray")
    # Ray's unix sockets live 60-odd characters under the head's folder: pytest's tmp_path is too deep.
    folder = Path(tempfile.mkdtemp(prefix="tr-", dir="/tmp"))
    env = dict(clean_env, RAY_AUTH_MODE="disabled", TMPDIR=str(folder))
    env.pop("RAY_TMPDIR", None)
    env.pop("RAY_ADDRESS", None)
    try:
        r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=140)
        assert r.returncode == 0, r.stderr[-2000:]
        seen = json.loads(r.stdout.strip().splitlines()[-1])
        assert seen == {"built": False, "started": True, "after": False, "out": [2 * x for x in range(40)]}
        assert list(folder.iterdir()) == []  # the head's folder went with it
    finally:
        shutil.rmtree(folder, ignore_errors=True)
