import subprocess
import sys

import iqrs
from iqrs.cli import main


def test_demo_prints_every_type(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for t in iqrs.types():
        assert f"\n{t.name} " in out
    assert "Mw/s" in out and "bpw" in out


def test_cli_entry_point_and_errors():
    r = subprocess.run([sys.executable, "-m", "iqrs", "demo", "--types", "nope"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown quantization type 'nope'" in r.stderr and "Traceback" not in r.stderr
