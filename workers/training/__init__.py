"""The built-in CNN objective (config, nets, data, run) and the objective/context contract."""
