"""vagrant/Vagrantfile cannot boot here (no hypervisor); check that it parses and that every
box provisions with the project's set-up and runs the root suite."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANTFILE = Path(__file__).resolve().parents[2] / "vagrant" / "Vagrantfile"


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed (apt-get install ruby)")
def test_vagrantfile_is_valid_ruby():
    res = subprocess.run(["ruby", "-c", str(VAGRANTFILE)], capture_output=True, text=True)
    assert res.returncode == 0 and "Syntax OK" in res.stdout, res.stderr


def test_boxes_cover_three_kernel_generations_and_run_the_root_suite():
    text = VAGRANTFILE.read_text()
    boxes = re.findall(r'"((?:generic|bento|debian|fedora)/[\w.-]+)"', text)
    assert len(set(boxes)) >= 3, boxes
    assert "scripts/setup.sh" in text and "-m root" in text
