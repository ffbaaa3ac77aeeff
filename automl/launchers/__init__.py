"""Launchers: the boundary the experiment loop sees, local trial processes, and simulated trials."""
