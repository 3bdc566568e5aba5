"""One LightningModule per task: the model, its loss and its metrics."""
