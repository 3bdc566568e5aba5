"""The covid task's callbacks: figures, the world map, the data report and the baselines."""

from callbacks.covid.figures import ConfusionMatrices, CorrelationHeatmap, Reliability
from callbacks.covid.metrics import Baselines, DataReport
from callbacks.covid.world_map import WorldMap

__all__ = ["Baselines", "ConfusionMatrices", "CorrelationHeatmap", "DataReport", "Reliability", "WorldMap"]
