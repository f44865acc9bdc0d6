"""A run in its folder: the plan, each seed's init.ckpt, the order of things, resume, the session."""
