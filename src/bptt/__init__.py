"""bptt: exact backpropagation through time for the seed's sigmoid RNN, any size.

Public API:
    RNN          the network (numpy), forward / loss_and_grad / decompose
    BPTTError    raised for bad input, with a one-line message
    ACTIVATIONS  the activation table shared by the numeric and symbolic engines

``import bptt`` imports nothing but this file: each name loads its module (and numpy) when first used
(PEP 562), so the command line can take over Ctrl-C before anything heavy loads.  torch, jax, sympy, numba
and matplotlib load only where they are used.

Training (``bptt.train``, ``bptt.tasks``): the sunspots task ships
``data/sunspots.csv``, yearly sunspot numbers 1700-2008, copied from the
statsmodels package, which states: "Yearly (1700-2008) data on sunspots from the
National Geophysical Data Center", source http://www.ngdc.noaa.gov/stp/solar/solarda3.html,
"This data is public domain." (full text: ``data/SUNSPOTS_SOURCE.txt``).
"""

TYPE_CHECKING = False  # not typing's: importing typing takes 30 ms of the start-up the command line guards
if TYPE_CHECKING:  # what the names are, for type checkers and the API reference (mkdocstrings reads this file)
    from .activations import ACTIVATIONS
    from .engine import PARAM_NAMES
    from .model import RNN, ForwardResult
    from .validation import BPTTError

__version__ = "0.1.0"
__all__ = ["RNN", "ForwardResult", "BPTTError", "ACTIVATIONS", "PARAM_NAMES", "__version__"]

# public name -> the module defining it; the modules `import bptt` loaded before it was lazy stay reachable as
# attributes (``bptt.model``) without their own import, as they were
_NAMES = {"RNN": "model", "ForwardResult": "model", "BPTTError": "validation", "ACTIVATIONS": "activations",
          "PARAM_NAMES": "engine"}
_MODULES = frozenset({"activations", "dispatch", "engine", "losses", "model", "products", "validation"})


def __getattr__(name: str):
    from importlib import import_module  # here, not at the top: `import bptt` loads nothing else

    if name in _NAMES:
        value = getattr(import_module(f"{__name__}.{_NAMES[name]}"), name)
    elif name in _MODULES:
        value = import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
