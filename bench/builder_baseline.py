"""Reference side of bench/builder.sh: the builder's candidate families in scikit-learn, trained on
the training rows of the split Nebula chose (its validation row numbers are read from --val-rows)
and scored on the same validation rows. Prints one JSON line like nebula-bench-builder's.

Preprocessing as close to Nebula's as scikit-learn allows: numeric columns mean-imputed and
standardised, categoricals one-hot (the 32 most frequent levels plus the rest), ISO dates as
year/month/day/weekday/day-of-year, the text column (--text) as TF-IDF n-grams.
Candidates — tables: LogisticRegression (classification) or LinearRegression, MLP (128, 64; Adam,
early stopping), HistGradientBoosting (early stopping); text: logistic regression on word 1–2-gram
TF-IDF, on word + char 3–5-gram TF-IDF, and an SGD log-loss classifier on the latter.
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--val-rows", required=True)
    ap.add_argument("--task", required=True, choices=["binary", "multiclass", "regression"])
    ap.add_argument("--text")
    ap.add_argument("--drop", default="")
    args = ap.parse_args()

    start = time.perf_counter()
    df = pd.read_csv(args.csv)
    val = np.array([int(x) for x in open(args.val_rows).read().split()], dtype=np.int64)
    labelled = df[args.target].notna().to_numpy()
    is_val = np.zeros(len(df), dtype=bool)
    is_val[val] = True
    train = labelled & ~is_val
    y = df[args.target]
    X = df.drop(columns=[args.target] + [c for c in args.drop.split(",") if c])

    regression = args.task == "regression"
    if args.text:
        word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        both = lambda: make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                  TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True))
        texts = X[args.text].fillna("")
        candidates = {
            "LogReg word 1-2": make_pipeline(word, LogisticRegression(max_iter=1000)),
            "LogReg word+char": make_pipeline(both(), LogisticRegression(max_iter=1000)),
            "SGD word+char": make_pipeline(both(), SGDClassifier(loss="log_loss", random_state=0)),
        }
        Xtr, Xva = texts[train], texts.iloc[val]
    else:
        numeric, categorical, dates = [], [], []
        for c in X.columns:
            col = X[c]
            if pd.api.types.is_numeric_dtype(col):
                numeric.append(c)
            else:
                parsed = pd.to_datetime(col, errors="coerce", format="ISO8601")
                if parsed.notna().mean() > 0.9:
                    dates.append(c)
                else:
                    categorical.append(c)
        for c in dates:
            d = pd.to_datetime(X[c], errors="coerce", format="ISO8601")
            for part, values in [("year", d.dt.year), ("month", d.dt.month), ("day", d.dt.day),
                                 ("weekday", d.dt.weekday), ("yday", d.dt.dayofyear)]:
                X[f"{c}_{part}"] = values
                numeric.append(f"{c}_{part}")
        X = X.drop(columns=dates)
        pre = lambda: ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(max_categories=33, handle_unknown="infrequent_if_exist"), categorical),
        ])
        if regression:
            candidates = {
                "LinearRegression": make_pipeline(pre(), LinearRegression()),
                "MLP": make_pipeline(pre(), MLPRegressor(hidden_layer_sizes=(128, 64), early_stopping=True, max_iter=300, random_state=0)),
                "HistGradientBoosting": make_pipeline(pre(), HistGradientBoostingRegressor(early_stopping=True, random_state=0)),
            }
        else:
            candidates = {
                "LogisticRegression": make_pipeline(pre(), LogisticRegression(max_iter=1000)),
                "MLP": make_pipeline(pre(), MLPClassifier(hidden_layer_sizes=(128, 64), early_stopping=True, max_iter=200, random_state=0)),
                "HistGradientBoosting": make_pipeline(pre(), HistGradientBoostingClassifier(early_stopping=True, random_state=0)),
            }
        Xtr, Xva = X[train], X.iloc[val]
    ytr, yva = y[train], y.iloc[val]
    if not regression:
        ytr, yva = ytr.astype(str), yva.astype(str)

    rows = []
    for name, model in candidates.items():
        t0 = time.perf_counter()
        model.fit(Xtr, ytr)
        fit = time.perf_counter() - t0
        p = model.predict(Xva)
        score = float(np.sqrt(mean_squared_error(yva, p))) if regression else float(accuracy_score(yva, p))
        rows.append({"model": name, "score": score, "fit_s": round(fit, 4)})
    best = (min if regression else max)(rows, key=lambda r: r["score"])
    print(json.dumps({
        "tool": "scikit-learn", "metric": "rmse" if regression else "accuracy", "best": best["model"], "score": best["score"],
        "run_s": round(time.perf_counter() - start, 3), "fit_s": round(sum(r["fit_s"] for r in rows), 3),
        "candidates": rows, "train_rows": int(train.sum()), "validation_rows": int(len(val)),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
