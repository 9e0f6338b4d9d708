"""The study core: create a study, add trials, build the space, change a study's state, the worker
protocol and the suggest flow. It imports no feature: it calls the hook list (hooks.py)."""
