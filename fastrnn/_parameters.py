"""The parameter container shared by the layer modules and the cells.

A subclass sets, at construction, ``_shapes`` (an ordered dict of parameter
name to shape, PyTorch's names), ``_dtype`` and ``_CONFIG`` (the names of its
configuration attributes, fixed once built), then calls ``_init_parameters``.
The parameters are then live attributes (``module.weight_ih_l0``), with
``state_dict``, ``load_state_dict`` and pickling as PyTorch has them.
"""

import itertools
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from fastrnn import _core
from fastrnn._checks import check_flag, describe, float_array, shape_str

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_instance_ids = itertools.count()


def on_line(arr, dtype):
    """A C-contiguous copy of ``arr`` in ``dtype`` whose data starts on a 64-byte line.

    The kernels read a module's weights where they lie, sixteen floats at a
    time (a cell's step, the packing at the start of a call): on a line, each
    of those reads is one cache line, not two.
    """
    arr = np.asarray(arr)
    out = _core.aligned_empty(arr.shape, dtype)
    out[...] = arr
    return out


def kept_copy(arr):
    """A copy of the parameter ``arr`` for a training step's cache, in a block that
    an earlier step's cache held once nothing holds it (``_core.kept_empty``): a
    fresh copy of every weight on every step would fault in and zero its pages."""
    out = _core.kept_empty(arr.shape, arr.dtype)
    np.copyto(out, arr)
    return out


def config_property(name, doc):
    """A read-only attribute for the configuration value stored as ``_<name>``."""
    return property(lambda self: self.__dict__["_" + name], doc=doc)


class Parameters:
    """Parameters as live attributes, state_dict, load_state_dict, pickling."""

    _CONFIG = ()

    def __setattr__(self, name, value):
        shapes = self.__dict__.get("_shapes")
        if shapes is not None and name in shapes:
            self.__dict__[name] = self._converted(name, value, name)
            self._parameters_changed()
        elif name in type(self)._CONFIG:
            raise AttributeError(f"{name}: the configuration is fixed at construction; "
                                 f"build a new {type(self).__name__}")
        else:
            object.__setattr__(self, name, value)

    def _converted(self, key, value, label):
        """``value`` checked against the shape of parameter ``key`` as a fresh array."""
        arr = float_array(label, value)
        if arr.shape != self._shapes[key]:
            raise ValueError(f"{label}: expected shape {shape_str(self._shapes[key])}, "
                             f"got {shape_str(arr.shape)}")
        return on_line(arr, self._dtype)

    def _parameters_changed(self):
        """Called after a parameter attribute is replaced (a subclass may cache them)."""

    def _init_parameters(self, seed, hidden_size):
        """PyTorch's initialisation: every parameter uniform in ±1/sqrt(hidden_size)."""
        try:
            self.__dict__["_rng"] = np.random.default_rng(seed)
        except (TypeError, ValueError) as err:
            raise TypeError(f"seed: expected None, an int >= 0 or a numpy SeedSequence / "
                            f"Generator, got {describe(seed)} ({err})") from None
        bound = 1.0 / np.sqrt(hidden_size)
        for name, shape in self._shapes.items():
            self.__dict__[name] = on_line(self._rng.uniform(-bound, bound, shape), self._dtype)
        self.__dict__["_id"] = next(_instance_ids)

    def _params(self):
        return {name: self.__dict__[name] for name in self._shapes}

    def state_dict(self):
        """The parameters under PyTorch's names, as copies.

        Returns
        -------
        dict
            ``{name: ndarray}`` in PyTorch's order, same names and shapes as
            the ``torch.nn`` module's ``state_dict()``.
        """
        return {name: self.__dict__[name].copy() for name in self._shapes}

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters in, PyTorch's names and shapes.

        Parameters
        ----------
        state_dict : mapping
            ``{name: array}``; values are anything ``np.asarray`` takes (a
            CPU torch tensor too) of a float dtype, cast to the module's dtype.
        strict : bool, default True
            Require exactly the module's keys.  With ``False``, missing keys
            keep their values and unexpected keys are ignored; a wrong shape
            is an error either way.

        Returns
        -------
        namedtuple (missing_keys, unexpected_keys)

        Raises
        ------
        ValueError
            Missing or unexpected keys (``strict``), a value of the wrong shape.
        TypeError
            Not a mapping, or a value that is not a float array.

        Nothing is changed unless every entry is accepted.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got "
                            f"{describe(state_dict)}")
        strict = check_flag("strict", strict)
        missing = [k for k in self._shapes if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._shapes]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict: expected exactly the keys {list(self._shapes)}; "
                             f"missing {missing}, unexpected {unexpected}")
        new = {k: self._converted(k, state_dict[k], f"state_dict[{k!r}]")
               for k in self._shapes if k in state_dict}
        for k, value in new.items():
            np.copyto(self.__dict__[k], value)
        return IncompatibleKeys(missing, unexpected)

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_id"] = next(_instance_ids)   # a copy is another module
        for name in self._shapes:                    # unpickled arrays lie anywhere
            if isinstance(self.__dict__.get(name), np.ndarray):
                self.__dict__[name] = on_line(self.__dict__[name], self._dtype)
        self._parameters_changed()
