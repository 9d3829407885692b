"""lejepa.plot: a figure of a scale other than cpu gets its own file; the cpu figures the README links stay put."""

import shutil

from common.paths import experiments_dir
from lejepa.plot import plot_planning


def test_gpu_figures_do_not_overwrite_cpu_figures(tmp_path):
    results, figures = tmp_path / "results", tmp_path / "figures"
    results.mkdir()
    for scale in ("cpu", "gpu"):
        shutil.copy(experiments_dir("lejepa") / "results" / f"worldmodel_{scale}.json", results)
    cpu = plot_planning(results, figures, "cpu")
    gpu = plot_planning(results, figures, "gpu")
    assert (cpu.name, gpu.name) == ("planning.png", "planning_gpu.png")
    assert cpu.read_bytes() != gpu.read_bytes()
