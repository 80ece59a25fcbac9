"""bptt: exact backpropagation through time for the seed's sigmoid RNN, any size.

Public API:
    RNN          the network (numpy), forward / loss_and_grad / decompose
    BPTTError    raised for bad input, with a one-line message
    ACTIVATIONS  the activation table shared by the numeric and symbolic engines

``import bptt`` imports numpy only; torch, jax, sympy, numba and matplotlib
load where they are used.

Training (``bptt.train``, ``bptt.tasks``): the sunspots task ships
``data/sunspots.csv``, yearly sunspot numbers 1700-2008, copied from the
statsmodels package, which states: "Yearly (1700-2008) data on sunspots from the
National Geophysical Data Center", source http://www.ngdc.noaa.gov/stp/solar/solarda3.html,
"This data is public domain." (full text: ``data/SUNSPOTS_SOURCE.txt``).
"""

from .validation import BPTTError
from .activations import ACTIVATIONS
from .engine import PARAM_NAMES
from .model import RNN, ForwardResult

__version__ = "0.1.0"
__all__ = ["RNN", "ForwardResult", "BPTTError", "ACTIVATIONS", "PARAM_NAMES", "__version__"]
