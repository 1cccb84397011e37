"""What the timing benchmarks share: a timer, interleaved medians, what they record about
where they ran (package versions and the machine) and how they write it (``write_json``)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import statistics
import time


def versions(packages=("fxgx", "jax", "jaxlib", "tensorflow")) -> dict:
    """Python's version and each installed package's (missing packages are left out)."""
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def machine() -> dict:
    """The platform, processor, core count and load average now."""
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}


def timed(function) -> float:
    """Seconds one call of ``function()`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def timed_with_cpu(function) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads of this process: less sensitive to
    other processes on a shared machine) that one call of ``function()`` takes."""
    start, start_cpu = time.perf_counter(), time.process_time()
    function()
    cpu = time.process_time() - start_cpu
    return time.perf_counter() - start, cpu


def interleaved_medians(functions, repeats: int) -> list[float]:
    """The median seconds of each function over ``repeats`` rounds, the functions called in
    turn within a round (a load change on a shared machine hits all of them); each is called
    once first, to compile."""
    for function in functions:
        function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for index, function in enumerate(functions):
            times[index].append(timed(function))
    return [statistics.median(series) for series in times]


def program_fingerprint(hlo_text: str) -> str:
    """A hash of an optimized HLO module's instructions alone: without the module's name,
    the metadata (source files, op names) and the stack-frame tables, and with every
    instruction renamed in order of appearance (TensorFlow names them after its graph nodes,
    ``IsFinite`` or ``IsFinite_1``), so that two source trees that compile to the same
    program get the same fingerprint."""
    names: dict[str, str] = {}

    def renamed(match):
        return names.setdefault(match.group(0), f"%v{len(names)}")

    lines = []
    for line in hlo_text.splitlines():
        if "%" not in line or "=" not in line or line.startswith("HloModule"):
            continue
        line = re.sub(r"stack_frame_id=\d+", "", line)
        line = re.sub(r", metadata=\{.*?\}", "", line)
        lines.append(re.sub(r"%[\w.\-]+", renamed, line))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def write_json(document: dict, path) -> None:
    """Write a benchmark's results as indented JSON ending in a newline, making its folder."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
