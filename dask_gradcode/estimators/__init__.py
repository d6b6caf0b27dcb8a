"""scikit-learn estimators trained by coded gradient descent on a Dask cluster.

One concern per module: :mod:`~.base` (parameters, inputs and the fit loop
both estimators share), :mod:`~.classifier`, :mod:`~.regressor`,
:mod:`~.monitoring` (history, progress, early stopping, averaging, warnings)
and :mod:`~.inputs` (dask, pandas and sparse input; lazy dask predictions).
The coded rounds come from :mod:`dask_gradcode.scheduler`, the codes from
:mod:`dask_gradcode.codes` (by name), the optimisation loops from
:mod:`dask_gradcode.solvers`.
"""

from dask_gradcode.estimators.classifier import CodedSGDClassifier
from dask_gradcode.estimators.regressor import CodedSGDRegressor

__all__ = ["CodedSGDClassifier", "CodedSGDRegressor"]
