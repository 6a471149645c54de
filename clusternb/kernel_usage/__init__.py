"""Per-kernel usage: which notebook is using the memory, the CPU or the GPU, on every server of the cluster.

- :mod:`~clusternb.kernel_usage.record`: the kernel records a server publishes (declared once, validated where
  they enter);
- :mod:`~clusternb.kernel_usage.directory`: what a Jupyter server knows of its kernels (read on its loop);
- :mod:`~clusternb.kernel_usage.measure`: each kernel's process tree through psutil and NVML;
- :mod:`~clusternb.kernel_usage.board`: where the reports are kept (memory, or Redis for a cluster);
- :mod:`~clusternb.kernel_usage.frame`: the ``kernels()`` frame, privacy and filters;
- :mod:`~clusternb.kernel_usage.service`: the part of a client that publishes and answers.
"""
