"""Photos whose label is likely wrong: out-of-sample probabilities from cross-validated heads on frozen features,
then confident learning (Northcutt et al. 2021, cleanlab's ``find_label_issues``).

Every photo is scored by a logistic-regression head that never saw it (K-fold cross-validation on the backbone's
cached features), so a mislabelled photo cannot vouch for its own label. Confident learning then estimates how
often each class is labelled as each other class and flags the photos those counts say are off, ranked by the
probability the held-out head gives their label (its self-confidence, lowest first).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from garbage_lit.errors import ConfigError

INSTALL = "pip install 'garbage-lit[insight]'"


def require_insight_packages() -> None:
    """One line naming the extra when cleanlab or scikit-learn is missing."""
    missing = [name for name, module in (("cleanlab", "cleanlab"), ("scikit-learn", "sklearn"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"the label audit needs {' and '.join(missing)}: {INSTALL}")


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                                regularization: float = 1.0, seed: int = 0) -> np.ndarray:
    """``(N, num_classes)`` class probabilities of each photo from a head trained on the other folds.

    The head is scikit-learn's multinomial logistic regression on standardised features (``regularization``
    is its ``C``: smaller is stronger); folds are stratified by label. A class missing from a fold's training
    part gets probability 0 there.
    """
    require_insight_packages()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = int(np.bincount(labels, minlength=num_classes)[np.unique(labels)].min())
    if folds < 2 or smallest < folds:
        raise ConfigError(f"folds={folds}: cross-validation needs at least 2 folds and every class at least as many "
                         f"images as folds (the smallest class has {smallest}); lower folds")
    probs = np.zeros((len(labels), num_classes))
    for train, held_out in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        head = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=2000))
        head.fit(features[train], labels[train])
        probs[np.ix_(held_out, head.classes_)] = head.predict_proba(features[held_out])
    return probs


CONFIDENT_LEARNING = "confident learning"
IDENTICAL_COPY = "identical photo in another class"


@dataclass(frozen=True)
class Suspect:
    """One photo whose label confident learning doubts, or that has a byte-identical copy in another class."""

    index: int
    given: int
    suggested: int
    label_quality: float    # the held-out probability of the given label: low means doubtful
    suggested_probability: float
    confident_learning: bool             # flagged by confident learning
    copy_classes: tuple[str, ...] = ()   # the other classes a byte-identical copy is filed under

    @property
    def reasons(self) -> list[str]:
        """Why it is a suspect, in words: ``confident learning``, ``identical photo also labelled glass``."""
        return ([CONFIDENT_LEARNING] if self.confident_learning else []) + \
            ([f"identical photo also labelled {'/'.join(self.copy_classes)}"] if self.copy_classes else [])


def find_suspects(probs: np.ndarray, labels: np.ndarray, conflicting_copies: dict[int, Sequence[str]] | None = None,
                  filter_by: str = "prune_by_class") -> list[Suspect]:
    """Photos with likely label errors, most doubtful first (lowest probability of their given label).

    ``filter_by`` is cleanlab's rule for how many photos of each class to flag from the estimated noise:
    ``prune_by_class`` (the ones of lowest self-confidence per given class) also flags a photo whose held-out head
    is torn between two other classes; ``prune_by_noise_rate`` (cleanlab's default) needs a confident alternative.

    ``conflicting_copies`` maps a photo to the classes its byte-identical copies are labelled in elsewhere: those are
    suspects whatever the probabilities say, since at most one of the labels can be right.
    """
    require_insight_packages()
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    flagged = set(find_label_issues(labels, probs, filter_by=filter_by).nonzero()[0].tolist())
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    copies = conflicting_copies or {}
    suspects = []
    for index in sorted(flagged | set(copies)):
        suggested = int(probs[index].argmax())
        suspects.append(Suspect(index, int(labels[index]), suggested, float(quality[index]),
                                float(probs[index, suggested]), index in flagged,
                                tuple(sorted(set(copies.get(index, ()))))))
    return sorted(suspects, key=lambda s: (s.label_quality, s.index))
