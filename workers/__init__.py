"""Workers: environments, agents, the episode runner and the worker process."""
