"""The covid task's data: case files read, windows made, and the DataModule that runs both."""

from datamodules.covid.datamodule import CovidDataModule

__all__ = ["CovidDataModule"]
