"""hw2lab's one entry point: `python run.py task=<task> [overrides]`, or `python run.py -m ...` to sweep.

Examples:
    python run.py task=vae                          # one run, outputs/vae/<date>/<time>/
    python run.py -m task=vae kl_weight=0,1,10,100  # four runs + summary, multirun/vae/<date>/<time>/
    python run.py experiment=vae_conv_anime         # a seed report's settings
"""

import hydra
from omegaconf import DictConfig

import hw2lab  # noqa: F401  (registers the config resolvers)
from hw2lab.pipeline import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
