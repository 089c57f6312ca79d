"""fixar.sim.runner.folder_lock: make test's workers (pytest-xdist) share
build folders, so a second process wanting a locked folder must wait."""
import subprocess
import sys
import time

from fixar.sim.runner import folder_lock

HOLDER = """
import sys, time
from pathlib import Path
from fixar.sim.runner import folder_lock
with folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(1.5)
    Path(sys.argv[2]).write_text(repr(time.time()))
"""


def test_a_second_process_waits_for_the_folder(tmp_path):
    folder, released = tmp_path / "build", tmp_path / "released"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(released)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with folder_lock(folder):
            got = time.time()
            assert released.exists(), "the lock was taken while another process held it"
        assert got >= float(released.read_text())
    finally:
        holder.wait(timeout=30)


def test_a_dead_holder_leaves_the_folder_free(tmp_path):
    folder = tmp_path / "build"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(tmp_path / "never")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=30)
    start = time.monotonic()
    with folder_lock(folder):
        pass
    assert time.monotonic() - start < 1.0
