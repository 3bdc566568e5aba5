"""The course's text pipeline for word models: lower-case, tokenize with nltk, drop nltk's English stop
words (looked for in `<data dir>/nltk_data` first, so that no download is needed)."""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

from hw2lab.errors import check

log = logging.getLogger("hw2lab")

TOKENIZERS = ("regexp", "word", "split")


def make_tokenizer(name: str) -> Callable[[str], list[str]]:
    """Tokenizers of lower-cased text; none needs a downloaded nltk corpus."""
    check(name in TOKENIZERS, f"data.tokenizer must be one of {TOKENIZERS}, got {name!r}")
    if name == "regexp":
        from nltk.tokenize import RegexpTokenizer

        return RegexpTokenizer(r"[a-z\-]+").tokenize
    if name == "word":
        # word_tokenize = punkt sentence split + NLTKWordTokenizer; punkt needs a download, so sentences
        # are split on end punctuation followed by white space instead.
        from nltk.tokenize import NLTKWordTokenizer

        words = NLTKWordTokenizer()
        return lambda text: [t for s in re.split(r"(?<=[.!?])\s+", text) for t in words.tokenize(s)]
    return str.split


def nltk_data_paths(data_dir: str | Path | None = None) -> list[Path]:
    """Where nltk data is looked for: `<data dir>/nltk_data` first (the project's offline copy), then
    nltk's own paths (`NLTK_DATA`, ~/nltk_data, the environment's and the system's)."""
    import nltk

    own = [Path(data_dir).expanduser() / "nltk_data"] if data_dir else []
    return own + [Path(p) for p in nltk.data.path]


def read_nltk_word_list(base: Path, name: str = "english") -> tuple[list[str], Path] | None:
    """nltk's word list `corpora/stopwords/<name>` under an nltk data folder `base`, from the unpacked folder
    or `corpora/stopwords.zip` (read as nltk reads it: one word a line, blank lines skipped); None when
    `base` has neither. Read directly, so that a folder outside nltk's own paths is allowed."""
    folder, archive = base / "corpora" / "stopwords", base / "corpora" / "stopwords.zip"
    if (folder / name).is_file():
        return (folder / name).read_text(encoding="utf-8").splitlines(), folder
    if archive.is_file():
        with zipfile.ZipFile(archive) as bundle:
            lines = bundle.read(f"stopwords/{name}").decode("utf-8").splitlines()
        return lines, archive
    return None


def english_stop_words(data_dir: str | Path | None = None) -> tuple[frozenset[str], str]:
    """nltk's English list from the first place on `nltk_data_paths(data_dir)` that has its stopwords corpus
    (folder or zip); else scikit-learn's ENGLISH_STOP_WORDS (logged). Returns (words, source), the source
    naming the list and, for nltk's, the file it was read from."""
    searched = nltk_data_paths(data_dir)
    for base in searched:
        try:
            found = read_nltk_word_list(base)
        except (OSError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as error:  # a damaged copy
            log.warning("cannot read nltk's stop words under %s (%s); looking further", base, error)
            continue
        if found is not None:
            words = frozenset(w.strip() for w in found[0] if w.strip())
            if words:
                return words, f"nltk ({found[1]})"
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    log.warning(
        "nltk's stopwords corpus is not in %s: using scikit-learn's English stop words instead (put nltk's "
        "corpora/stopwords.zip under <data dir>/nltk_data, or `python -m nltk.downloader stopwords`)",
        ", ".join(str(p) for p in searched),
    )
    return frozenset(ENGLISH_STOP_WORDS), "scikit-learn"


class TextPipeline:
    """Lower-case -> tokenize -> drop stop words; the course's preprocessing in one callable. Stop words:
    nltk's English list, looked for in `<data_dir>/nltk_data` and nltk's own paths (`english_stop_words`)."""

    def __init__(
        self,
        tokenizer: str = "regexp",
        remove_stop_words: bool = True,
        lowercase: bool = True,
        data_dir: str | Path | None = None,
    ):
        self.tokenize = make_tokenizer(tokenizer)
        self.lowercase = lowercase
        self.stop_words, self.stop_words_source = (
            english_stop_words(data_dir) if remove_stop_words else (frozenset(), "")
        )

    def __call__(self, text: str) -> list[str]:
        tokens = self.tokenize(text.lower() if self.lowercase else text)
        return [t for t in tokens if t not in self.stop_words]
