"""Run a whole local subnet: chain, miners and validators as processes, with a live dashboard."""
