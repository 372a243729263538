"""The quickstart as a plain script: make data, preprocess, fit and score, each step checkpointed."""

import time

import numpy as np

from checkpoint_magic import checkpoint


@checkpoint
def make_data(n_samples: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    y = (X[:, :5].sum(axis=1) + rng.normal(scale=0.5, size=n_samples) > 0).astype(int)
    time.sleep(1.0)  # stands for reading a large data set
    return X, y


@checkpoint
def preprocess(X: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=20, random_state=0).fit_transform((X - X.mean(0)) / X.std(0))


@checkpoint
def fit_and_score(X: np.ndarray, y: np.ndarray, C: float) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    return float(cross_val_score(LogisticRegression(C=C, max_iter=500), X, y, cv=5).mean())


def step(name, func, *args):
    start = time.perf_counter()
    result = func(*args)
    print(f"[step] {name}: {time.perf_counter() - start:.3f} s")
    return result


X, y = step("make_data", make_data, 200_000, 100, 0)
X_small = step("preprocess (PCA)", preprocess, X)
score = step("fit_and_score", fit_and_score, X_small, y, 1.0)
print(f"cross-validated accuracy: {score:.3f}")
