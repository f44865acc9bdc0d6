"""One trial of any LightningModule: the problem, the fit, its observer and the fast paths."""
