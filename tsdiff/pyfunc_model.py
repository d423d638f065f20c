"""The MLflow pyfunc of a tsdiff model, logged from code (MLflow's "models from code").

``tsdiff.registry`` passes the path of this file as ``python_model``:
MLflow copies the file into the logged model and runs it when the model is loaded,
instead of cloudpickling a ``PythonModel`` object at logging and unpickling it at
loading. The weights travel as the ``model_dir`` artifact, the directory written by
:meth:`TSDiff.save` (config, ``model.json`` and safetensors weights), which
:meth:`load_context` reads with :meth:`TSDiff.load`: loading never unpickles.

Running this file (MLflow does, as a module of its own) registers the model with
:func:`mlflow.models.set_model`; nothing else happens at import.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from tsdiff.registry import MODEL_DIR_ARTIFACT, predict_frame


class TSDiffPyfunc(PythonModel):
    """Impute or forecast with a saved tsdiff model, chosen by params.

    Params: ``mode`` ("impute" | "forecast"), ``horizon`` (forecast steps), ``levels``
    (list of ints; "50,90" is accepted where no signature is enforced), ``n_samples``,
    ``steps``, ``seed``, ``return_samples`` (return the raw samples frame instead). The
    work is done by :meth:`TSDiff.impute` / :meth:`TSDiff.forecast` through
    :func:`tsdiff.registry.predict_frame`; nothing is re-implemented here. Note that
    MLflow's schema enforcement turns datetime columns into ``datetime64[ns]``.
    """

    def load_context(self, context: Any) -> None:
        from tsdiff.model import TSDiff

        self.model = TSDiff.load(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return predict_frame(self.model, model_input, params)


set_model(TSDiffPyfunc())
