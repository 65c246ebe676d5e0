"""Progress out of a CPU step through a small file (tasks/step_progress.py)."""

from __future__ import annotations

from pathlib import Path

from tasks.step_progress import ProgressFile, read_progress


def test_progress_is_read_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "progress"
    path.touch()
    progress = ProgressFile(path)
    progress(3, 3)
    assert read_progress(path) == (3, 3)


def test_a_step_reporting_after_its_job_removed_the_file_leaves_nothing(
    tmp_path: Path,
) -> None:
    """A step cut short (cancel, timeout) runs on until its process is killed: its next
    report must not bring back the file the job already removed."""
    path = tmp_path / "progress"
    path.touch()
    progress = ProgressFile(path)
    progress(1, 5)
    path.unlink()
    progress(5, 5)
    assert not path.exists()
