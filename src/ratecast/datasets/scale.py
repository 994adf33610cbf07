"""The rating scale: the one place where ratings are turned into classes (and back) or clipped."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np


MAX_VALUES = 10_000  # distinct values a scale may have (one class each for the classification model)
#: "liked" (a relevant item in list metrics, a positive for tuning and the implicit model): a rating in the top
#: quarter of the scale, see :attr:`RatingScale.liked_threshold`
LIKED_FRACTION = 0.75


@dataclass(frozen=True)
class RatingScale:
    """A discrete rating scale ``minimum, minimum + step, ..., maximum`` (e.g. 1-5 stars, 0.5-5 in half stars)."""

    minimum: float
    maximum: float
    step: float = 1.0

    def __post_init__(self) -> None:
        for name in ("minimum", "maximum", "step"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise ValueError(f"rating scale {name} must be a number, got {value!r}")
        if not np.isfinite([self.minimum, self.maximum, self.step]).all():
            raise ValueError(
                f"rating scale bounds must be finite, got minimum={self.minimum}, maximum={self.maximum}, "
                f"step={self.step}"
            )
        if self.step <= 0:
            raise ValueError(f"rating scale step must be > 0, got step={self.step}")
        if self.maximum <= self.minimum:
            raise ValueError(
                f"rating scale maximum must be > minimum, got minimum={self.minimum}, maximum={self.maximum}"
            )
        n = (self.maximum - self.minimum) / self.step
        if not np.isfinite(n) or n + 1 > MAX_VALUES + 1e-6:  # checked first: round() of an overflow raises
            levels = "more than 1e308" if not np.isfinite(n) else str(round(n) + 1)
            raise ValueError(
                f"rating scale {self.minimum:g}..{self.maximum:g} step {self.step:g} has {levels} values; at most "
                f"{MAX_VALUES} are supported (an outlier rating, or ratings that are not on a scale?)"
            )
        if abs(n - round(n)) > 1e-6:
            raise ValueError(
                f"rating scale (maximum - minimum) must be a multiple of step, got {self.minimum}..{self.maximum} "
                f"step {self.step}"
            )
        if round(n) + 1 > MAX_VALUES:
            raise ValueError(
                f"rating scale {self.minimum:g}..{self.maximum:g} step {self.step:g} has {round(n) + 1} values; at most "
                f"{MAX_VALUES} are supported (an outlier rating, or ratings that are not on a scale?)"
            )

    @property
    def n_classes(self) -> int:
        return int(round((self.maximum - self.minimum) / self.step)) + 1

    @property
    def values(self) -> np.ndarray:
        return self.minimum + self.step * np.arange(self.n_classes, dtype="float64")

    @property
    def midpoint(self) -> float:
        return (self.minimum + self.maximum) / 2.0

    def level(self, fraction: float) -> float:
        """The lowest scale value at or above ``minimum + fraction * (maximum - minimum)``."""
        k = np.ceil(fraction * (self.maximum - self.minimum) / self.step - 1e-6)
        return float(round(self.minimum + self.step * min(max(k, 0), self.n_classes - 1), 10))

    @property
    def liked_threshold(self) -> float:
        """The rating at or above which an item counts as liked, the one definition that list metrics, tuning
        and the implicit model share: the lowest scale value at or above ``minimum + 0.75 * (maximum - minimum)``
        (4 on 1-5 and on 0.5-5, 8 on 1-10)."""
        return self.level(LIKED_FRACTION)

    def to_class(self, ratings) -> np.ndarray:
        """Class index of each rating (the nearest scale value)."""
        r = np.asarray(ratings, dtype="float64")
        return np.clip(np.rint((r - self.minimum) / self.step), 0, self.n_classes - 1).astype("int32")

    def from_class(self, classes) -> np.ndarray:
        """Rating of each class index: the inverse of :meth:`to_class`."""
        return self.minimum + self.step * np.asarray(classes, dtype="float64")

    def clip(self, ratings) -> np.ndarray:
        return np.clip(np.asarray(ratings, dtype="float64"), self.minimum, self.maximum)

    def on_scale(self, ratings) -> np.ndarray:
        """Boolean mask: which ratings lie on the scale (within bounds and on a step)."""
        r = np.asarray(ratings, dtype="float64")
        with np.errstate(invalid="ignore"):  # infinities are simply off the scale
            k = (r - self.minimum) / self.step
            return (r >= self.minimum - 1e-9) & (r <= self.maximum + 1e-9) & (np.abs(k - np.rint(k)) < 1e-6)

    @classmethod
    def infer(cls, ratings) -> "RatingScale":
        """Infer the scale from observed ratings: the bounds seen, and the coarsest step that fits them all."""
        r = np.unique(np.asarray(ratings, dtype="float64"))
        if r.size == 0:
            raise ValueError("cannot infer a rating scale from no ratings")
        lo, hi = float(r[0]), float(r[-1])
        if hi == lo:
            return cls(lo, lo + 1.0, 1.0)
        for step in (1.0, 0.5, 0.25, 0.1, 0.05, 0.01):
            k = (r - lo) / step
            if np.all(np.abs(k - np.rint(k)) < 1e-6):
                n = (hi - lo) / step
                if abs(n - round(n)) < 1e-6:
                    return cls(lo, hi, step)
        raise ValueError(f"ratings are not on a regular scale (seen values {r[:10].tolist()}...)")

    def to_dict(self) -> dict:
        return {"minimum": self.minimum, "maximum": self.maximum, "step": self.step}
