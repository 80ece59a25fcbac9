"""bptt: exact backpropagation through time for the seed's sigmoid RNN, any size.

Public API:
    RNN          the network (numpy), forward / loss_and_grad / decompose
    BPTTError    raised for bad input, with a one-line message
    ACTIVATIONS  the activation table shared by the numeric and symbolic engines

``import bptt`` imports numpy only; torch, jax, sympy, numba and matplotlib
load where they are used.
"""

from ._errors import BPTTError
from .activations import ACTIVATIONS
from .engine import PARAM_NAMES
from .model import RNN, ForwardResult

__version__ = "0.1.0"
__all__ = ["RNN", "ForwardResult", "BPTTError", "ACTIVATIONS", "PARAM_NAMES", "__version__"]
