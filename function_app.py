"""The Function App: creates the app and registers the blueprints, nothing else.

Adapters are wired lazily on first use (shared.bootstrap), never at import time: a failure here would
unregister every function. The maintenance blueprint holds only the janitor's timer. Retraining is not
here: the trainer is its own Function App (trainer/), and nothing this app imports reaches the training
code (tests/unit/test_registry.py checks).
"""

import azure.durable_functions as df

from functions.activities import bp as activities
from functions.control import bp as control
from functions.intake import bp as intake
from functions.maintenance import bp as maintenance
from functions.orchestrators import bp as orchestrators

app = df.DFApp()
app.register_functions(orchestrators)
app.register_functions(activities)
app.register_functions(intake)
app.register_functions(control)
app.register_functions(maintenance)
