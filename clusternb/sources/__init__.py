"""Where snapshots come from: the local host (psutil, cgroups, NVML), agents, Dask, service probes."""
