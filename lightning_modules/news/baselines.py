"""Baselines for the news task: classical models fitted and scored on the same splits as the nets."""

from __future__ import annotations


def tfidf_baseline(
    datamodule, cross_validate: bool = True, test_answers: dict[str, str] | None = None
) -> dict[str, float]:
    """The classical baseline the news models are read against (bench/news.py, bench/news_frozen.py):
    TF-IDF of 1-2-grams + logistic regression, fitted on the datamodule's training split and scored on its
    validation and test splits (and, with `cross_validate`, 5-fold over all articles, ungrouped).
    `test_answers`, when given, receives the predicted category of every test article by id."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, max_iter=2000),
    )
    model.fit(datamodule.texts("train"), datamodule.labels("train"))
    predicted = {s: model.predict(datamodule.texts(s)) for s in ("val", "test")}
    scores = {s: float((predicted[s] == datamodule.labels(s)).mean()) for s in ("val", "test")}
    if test_answers is not None:
        test_answers.update(zip(datamodule.ids("test"), (datamodule.classes[p] for p in predicted["test"])))
    if not cross_validate:
        scores["cv5"] = float("nan")  # printed as nan: skipped
        return scores
    everything = [t for s in ("train", "val", "test") for t in datamodule.texts(s)]
    labels = [y for s in ("train", "val", "test") for y in datamodule.labels(s)]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores["cv5"] = float(cross_val_score(model, everything, labels, cv=folds).mean())
    return scores
