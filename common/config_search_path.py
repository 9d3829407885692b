"""The shared config groups (`configs/logger/`, `configs/launcher/`) on every paperclub Hydra app's search path.

An app's primary config lives in `configs/<package>/`; Hydra searches only there (plus its own `pkg://hydra.conf`).
`SharedConfigsSearchPath` is a Hydra 1.3 `SearchPathPlugin` that appends `file://<repo>/configs` after that, so
`logger=jsonl` and `launcher=submitit_slurm` resolve from any package. Hydra discovers plugins by scanning the
`hydra_plugins` namespace package; ours lives in `common/`, so `register()` hands it to Hydra's plugin registry
(`Plugins.instance().register`) before an app or `compose()` builds its search path. Being a plugin rather than
a `hydra.searchpath=[...]` override appended to `sys.argv`, it leaves the command line as the user typed it:
`--cfg job`, `--help`, `--info` and `-m` work at any position. The folder is read when the search path is
built (`common.paths.configs_dir()`), so `PAPERCLUB_ROOT` is honoured. The class is importable by name, so a
launcher that pickles Hydra's plugin registry into its job processes (submitit, ray) can unpickle it there.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

from common.paths import configs_dir

PROVIDER = "paperclub"


class SharedConfigsSearchPath(SearchPathPlugin):
    """Appends `file://<repo>/configs` (provider `paperclub`) to the config search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider=PROVIDER, path=f"file://{configs_dir()}")


def register() -> None:
    """Register `SharedConfigsSearchPath` with Hydra (idempotent)."""
    plugins = Plugins.instance()
    if SharedConfigsSearchPath not in plugins.discover(SearchPathPlugin):
        plugins.register(SharedConfigsSearchPath)
