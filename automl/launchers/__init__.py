"""Launchers: the boundary the experiment loop sees (trial handles), local trial processes, simulated trials, and
reading a trial's metrics file and process usage."""
