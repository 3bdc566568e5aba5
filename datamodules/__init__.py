"""One LightningDataModule per dataset format: reading, splitting and batching."""
