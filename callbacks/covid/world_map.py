"""The pygal world map of tomorrow's predictions, with world_map.csv listing every country and why a
name was not drawn."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L

from callbacks.covid.country_codes import map_country
from callbacks.covid.protocols import CovidData, classifier

log = logging.getLogger("hw2lab")


class WorldMap(L.Callback):
    """Tomorrow's probability of an increase for every country of the file, on pygal's world map.

    Two series (`LEGEND`): ascending (p >= 0.5) and descending (p < 0.5), each country's probability as
    value and tooltip; the legend sits under the map, its text whole (pygal cuts legend text to fit the
    left margin by default). Countries that cannot be drawn are logged, counted in the metrics (`test/map_unmapped`)
    and listed with their reason in world_map.csv next to the drawn ones.
    """

    LEGEND = ("ascending (p >= 0.5)", "descending (p < 0.5)")

    def __init__(self, output_dir: str, figures_dir: str) -> None:
        self.output_dir, self.figures_dir = Path(output_dir), Path(figures_dir)
        # The names themselves, for metrics.json once the pipeline gathers callbacks' `run_notes`.
        self.run_notes: dict[str, list[str]] = {}

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from pygal_maps_world.maps import World

        datamodule: CovidData = trainer.datamodule
        names, windows = datamodule.latest_windows()
        probabilities = classifier(pl_module).predict_proba(windows).cpu().tolist()
        ascending, descending, rows, unmapped = {}, {}, [], []
        for name, probability in zip(names, probabilities):
            code, why = map_country(name)
            rows.append([name, code or "", f"{probability:.4f}", why])
            if code is None:
                unmapped.append(f"{name} ({why})")
                continue
            series = ascending if probability >= 0.5 else descending
            # pygal maps take {"value": (code, value), "label": tooltip text}.
            point = {
                "value": (code, round(probability, 4)),
                "label": f"{name}: P(increase) = {probability:.2f}",
            }
            previous = series.get(code)  # two names, one shape: keep the more confident one
            if previous is None or abs(probability - 0.5) > abs(previous["value"][1] - 0.5):
                series[code] = point
        pl_module.log("test/map_unmapped", float(len(unmapped)))
        self.run_notes = {"map_unmapped": unmapped}
        if not trainer.is_global_zero:
            return
        if unmapped:
            log.warning("world map: %d names not drawn: %s", len(unmapped), "; ".join(unmapped))
        last_day = datamodule.table.columns[-1].date()
        chart = World(
            title=f"P(new cases rise on the day after {last_day}), L={datamodule.interval}",
            show_legend=True,
            truncate_legend=-1,
            legend_at_bottom=True,
            legend_at_bottom_columns=len(self.LEGEND),
        )
        for label, series in zip(self.LEGEND, (ascending, descending)):
            chart.add(label, list(series.values()))
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        chart.render_to_file(str(self.figures_dir / "world_map.svg"))
        with open(self.output_dir / "world_map.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["country", "pygal_code", "p_increase", "not_drawn_because"])
            writer.writerows(rows)
