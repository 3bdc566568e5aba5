"""Run run.py on every bad input we know of and print what the user sees, as the table in docs/scale_out.md.

Usage: HW2LAB_DATA_DIR=../shared/data python scripts/bad_inputs.py > /tmp/table.md
Each case runs in a fresh temporary folder; shown is the error line of stderr: Hydra's own composition
errors put their message first and details after it; every other error is the last line. `python scripts/bad_inputs.py covid` runs only the matching cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("HW2LAB_DATA_DIR", "../shared/data")).resolve()


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def copy_tree_links(source: Path, target: Path) -> None:
    """A data dir that links every real dataset, so one file can be broken without touching the real one."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        (target / entry.name).symlink_to(entry)


def fake_shakespeare(data: Path, text: str) -> None:
    (data / "tiny_shakespeare").unlink()
    write(data / "tiny_shakespeare" / "input.txt", text)


def covid_missing_country(data: Path) -> None:
    (data / "covid").unlink()
    write(data / "covid" / "covid_19.csv", "Lat,Long,1/22/20,1/23/20\n1,2,0,1\n")


def covid_non_numeric(data: Path) -> None:
    (data / "covid").unlink()
    lines = (REAL / "covid" / "covid_19.csv").read_text().splitlines()
    cells = lines[5].split(",")
    cells[10] = "many"
    lines[5] = ",".join(cells)
    write(data / "covid" / "covid_19.csv", "\n".join(lines) + "\n")


def glove_ragged(data: Path) -> None:
    (data / "glove").unlink()
    write(data / "glove" / "glove.6B.50d.top90k.txt", "the 0.1 0.2 0.3\nof 0.1 0.2\n")


def bbc_empty_category(data: Path) -> None:
    (data / "bbc_news").unlink()
    target = data / "bbc_news" / "bbc"
    target.mkdir(parents=True)
    for category in (REAL / "bbc_news" / "bbc").iterdir():
        if category.is_dir():
            (target / category.name).mkdir()
            if category.name != "tech":
                for file in list(category.glob("*.txt"))[:30]:
                    (target / category.name / file.name).symlink_to(file)


def corrupt_face(data: Path) -> None:
    (data / "anime_faces").unlink()
    folder = data / "anime_faces" / "mlds_faces96"
    folder.mkdir(parents=True)
    for file in sorted((REAL / "anime_faces" / "mlds_faces96").glob("*.jpg"))[:40]:
        (folder / file.name).symlink_to(file)
    write(folder / "9999.jpg", b"this is not a jpeg")


CASES: list[tuple[str, list[str], object]] = [
    ("data dir without the dataset", ["task=vae"], "empty"),
    ("a corrupt image among the anime faces", ["task=vae", "data=anime_faces"], corrupt_face),
    ("negative kl_weight", ["task=vae", "kl_weight=-1"], None),
    ("kl_weight that is not a number", ["task=vae", "kl_weight=abc"], None),
    ("unknown model", ["task=vae", "model=no_such_model"], None),
    ("unknown key", ["task=vae", "foo=1"], None),
    ("unknown constructor argument", ["task=vae", "+model.foo=1"], None),
    ("split ratios that do not sum to 1", ["task=vae", "data.split=[0.5,0.1,0.1]"], None),
    ("resume a run dir without checkpoints", ["task=vae", "resume=/tmp"], None),
    ("ckpt_path that does not exist", ["task=vae", "ckpt_path=/nope.ckpt"], None),
    ("plain ddp inside a local multirun", ["-m", "task=vae", "trainer=ddp", "trainer.accelerator=cpu"], None),
    ("covid: CSV without a country column", ["task=covid"], covid_missing_country),
    ("covid: non-numeric count", ["task=covid"], covid_non_numeric),
    ("covid: threshold that leaves no country", ["task=covid", "data.corr_threshold=0.999"], None),
    ("covid: L longer than the series", ["task=covid", "interval=500"], None),
    ("covid: unknown cell", ["task=covid", "cell=transformer"], None),
    ("news: empty category folder", ["task=news"], bbc_empty_category),
    ("news: GloVe file with a ragged line", ["task=news", "model=lstm"], glove_ragged),
    (
        "news: model.pretrained that does not exist",
        ["task=news", "model=transformer", "model.net.encoder.pretrained=/nope"],
        None,
    ),
    ("charlm: empty text file", ["task=charlm"], lambda d: fake_shakespeare(d, "")),
    ("charlm: prime with characters not in the text", ["task=charlm", "prime=ROMEO*", "trainer=debug"], None),
    (
        "charlm: time_step longer than the data",
        ["task=charlm", "time_step=100000"],
        lambda d: fake_shakespeare(d, "NCTU is good. " * 50),
    ),
    ("food: weight_decay below 0", ["task=food", "weight_decay=-1"], None),
]


def run_case(args: list[str], setup) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        if setup == "empty":
            data.mkdir()
        else:
            copy_tree_links(REAL, data)
            if callable(setup):
                setup(data)
        env = {**os.environ, "HW2LAB_DATA_DIR": str(data)}
        env.pop("HYDRA_FULL_ERROR", None)
        result = subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "run.py"),
                *args,
                "trainer.max_epochs=1",
                "logger=none",
                f"hydra.run.dir={tmp}/run",
                f"hydra.sweep.dir={tmp}/sweep",
            ],
            capture_output=True,
            text=True,
            cwd=tmp,
            env=env,
            timeout=900,
        )
        lines = [
            line
            for line in result.stderr.splitlines()
            if line.strip()
            and "HYDRA_FULL_ERROR" not in line
            and "warn" not in line.lower()
            and not line.startswith(("  ", "\t"))
        ]
        hydra_errors = [line for line in lines if line.startswith(("In '", "Could not"))]
        shown = hydra_errors[0] if hydra_errors else (lines[-1] if lines else None)
        return result.returncode, (shown or "(nothing on stderr)").replace(tmp, "<tmp>")


def main() -> None:
    print("| bad input | command (overrides) | exit | what the user sees (last line of stderr) |")
    print("|---|---|---|---|")
    wanted = sys.argv[1] if len(sys.argv) > 1 else ""
    for description, args, setup in CASES:
        if wanted not in description:
            continue
        code, line = run_case(args, setup)
        print(f"| {description} | `{' '.join(args)}` | {code} | {line.replace('|', '/')} |", flush=True)


if __name__ == "__main__":
    main()
