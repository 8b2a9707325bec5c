"""Models-from-code entry of the policy pyfunc model.

MLflow copies this file into every logged policy model and runs it when the model is loaded;
it builds a :class:`journeyopt.tracking.model.PolicyPyfunc`, whose ``load_context`` reads the
policy's open-format files. Not meant to be imported.
"""

from mlflow.models import set_model

from journeyopt.tracking.model import PolicyPyfunc

set_model(PolicyPyfunc())
