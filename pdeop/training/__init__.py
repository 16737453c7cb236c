"""Training: the LightningModule for operator learning, callbacks, and the run composer."""
