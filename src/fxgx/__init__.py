"""fxgx: gradient estimators built on one primitive, ``custom_gradient(fx, gx, x)``.

``import fxgx`` imports neither TensorFlow nor JAX; the framework is chosen from the arrays
you pass and imported then.
"""

from fxgx.core.custom_gradient import custom_gradient

# The one definition of the version: pyproject.toml reads it ([tool.hatch.version]).
__version__ = "0.1.0"

__all__ = ["__version__", "custom_gradient"]
