"""GPUs: the NVML probe and its simulated twin, the monitor of their load, and the placement pool."""
