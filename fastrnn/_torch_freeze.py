"""``fastrnn.torch.freeze``: a torch model with its recurrent layers frozen.

Like ``torch.ao.quantization.quantize_dynamic``, ``freeze(model, dtype)``
returns a copy of a model in which each recurrent layer is an inference-only
module: here a ``FrozenRNN`` / ``FrozenLSTM`` / ``FrozenGRU`` computing
through ``fastrnn.freeze`` of the NumPy module with the same configuration
and weights (``fastrnn.RNN`` / ``LSTM`` / ``GRU``, built from the torch
module's attributes and ``state_dict``).  The frozen layer takes what
``torch.nn``'s takes (tensors, ``hx``, ``batch_first``, ``PackedSequence``,
unbatched input) and returns tensors; it computes no gradients, and says so
where one would be needed.

``fastrnn.torch`` imports this module; it imports PyTorch.
"""

import copy
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

__all__ = ["FrozenRNN", "FrozenLSTM", "FrozenGRU", "freeze"]

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class _FrozenBase(nn.Module):
    """What the three frozen layers share: the snapshot, the call, the copy of torch's
    configuration attributes."""

    _CONFIG = ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
               "dropout", "bidirectional", "proj_size")

    def __init__(self, module, dtype):
        super().__init__()
        import fastrnn
        for name in self._CONFIG:
            setattr(self, name, getattr(module, name))
        self.frozen = fastrnn.freeze(_numpy_module(module), dtype)
        self._torch_dtype = next(module.parameters()).dtype
        self.train(module.training)

    @property
    def dtype(self):
        """str: the precision of the frozen weights (``fastrnn.freeze``'s ``dtype``)."""
        return self.frozen.dtype

    @property
    def nbytes(self):
        """int: the bytes the frozen module holds for its parameters."""
        return self.frozen.nbytes

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s + f", dtype={self.frozen.dtype!s}"

    def forward(self, input, hx=None):  # noqa: A002 - torch.nn's argument name
        packed = isinstance(input, PackedSequence)
        data = input.data if packed else input
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"input: expected a tensor or a PackedSequence, got "
                            f"{type(input).__name__}")
        states = self._states(hx)
        tensors = (data,) + (states or ())
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            which = "input" if data.requires_grad else "hx"
            raise RuntimeError(
                f"{type(self).__name__}: a frozen module computes no gradients, but its "
                f"{which} requires grad (grad mode is on); call it under torch.no_grad() "
                "or torch.inference_mode(), or detach what goes in")
        for name, t in zip(("input", "hx"), (data, states[0] if states else None)):
            if t is not None and t.device.type != "cpu":
                raise ValueError(f"{name}: expected a CPU tensor (frozen modules compute on "
                                 f"the CPU), got one on {t.device}")
        if packed:
            return self._packed(input, states)
        y, state = self.frozen(self._array(data), self._state_arrays(states))
        return torch.from_numpy(y), self._state_tensors(state)

    # -- arguments --------------------------------------------------------------

    def _states(self, hx):
        """``hx`` as a tuple of tensors (``(h,)`` or ``(h, c)``), or None."""
        if hx is None:
            return None
        if self.mode == "LSTM":
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2
                    and all(isinstance(t, torch.Tensor) for t in hx)):
                raise TypeError(f"hx: expected a tuple (h_0, c_0) of tensors for the LSTM, "
                                f"got {type(hx).__name__}")
            return tuple(hx)
        if not isinstance(hx, torch.Tensor):
            raise TypeError(f"hx: expected a tensor, got {type(hx).__name__}")
        return (hx,)

    def _array(self, tensor):
        """A tensor as an ndarray (its memory where NumPy can read it).

        A float dtype NumPy has no name for (bfloat16) becomes the module's; the
        frozen module converts the other float dtypes and rejects the rest."""
        tensor = tensor.detach()
        if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32,
                                                               torch.float64):
            tensor = tensor.to(self._torch_dtype)
        return tensor.resolve_conj().resolve_neg().numpy()

    def _state_arrays(self, states):
        if states is None:
            return None
        arrays = tuple(self._array(s) for s in states)
        return arrays if self.mode == "LSTM" else arrays[0]

    def _state_tensors(self, state):
        if self.mode == "LSTM":
            return tuple(torch.from_numpy(s) for s in state)
        return torch.from_numpy(state)

    # -- packed sequences ------------------------------------------------------

    def _packed(self, input, states):
        """A ``PackedSequence``: padded in its sorted order with ``lengths``, run, packed
        again the same way; ``hx`` and the final state in the caller's order, as torch.nn."""
        data, batch_sizes, sorted_indices, unsorted_indices = input
        sizes = batch_sizes.numpy()
        T, N = len(sizes), int(sizes[0])
        valid = np.arange(N)[None, :] < sizes[:, None]                   # (T, N)
        index = torch.from_numpy(np.flatnonzero(valid))
        data = data.detach()
        if data.is_floating_point() and data.dtype != self._torch_dtype:
            data = data.to(self._torch_dtype)
        x = data.new_zeros(T * N, data.size(-1)).index_copy_(0, index, data).view(T, N, -1)
        lengths = None if valid.all() else valid.sum(axis=0)
        if states is not None and sorted_indices is not None:
            states = tuple(s.index_select(1, sorted_indices) for s in states)
        x = self._array(x)
        if self.batch_first:                    # the frozen module reads (N, T, I)
            x = x.transpose(1, 0, 2)
        y, state = self.frozen(x, self._state_arrays(states), lengths=lengths)
        y = torch.from_numpy(y)
        if self.batch_first:
            y = y.transpose(0, 1)
        y = y.reshape(T * N, -1).index_select(0, index)
        state = self._state_tensors(state)
        if unsorted_indices is not None:
            state = (tuple(s.index_select(1, unsorted_indices) for s in state)
                     if self.mode == "LSTM" else state.index_select(1, unsorted_indices))
        return PackedSequence(y, batch_sizes, sorted_indices, unsorted_indices), state


_FROZEN_DOC = """{what} frozen by ``fastrnn.torch.freeze``: inference only.

    Notes
    -----
    ``forward(input, hx=None)`` as ``torch.nn.{name}``'s{hx}, returning
    ``{returns}``; computed by ``frozen``, the ``fastrnn.freeze`` of
    ``fastrnn.{name}`` with the weights the module had when it was frozen.
    It has no parameters: ``state_dict()`` holds nothing of it.
    """


class FrozenRNN(_FrozenBase):
    __doc__ = _FROZEN_DOC.format(what="An Elman RNN", name="RNN", hx="",
                                 returns="(output, h_n)")


class FrozenLSTM(_FrozenBase):
    __doc__ = _FROZEN_DOC.format(what="An LSTM", name="LSTM", hx=" (``hx`` a tuple "
                                 "``(h_0, c_0)``)", returns="(output, (h_n, c_n))")


class FrozenGRU(_FrozenBase):
    __doc__ = _FROZEN_DOC.format(what="A GRU", name="GRU", hx="", returns="(output, h_n)")


_FROZEN = {"RNN_TANH": FrozenRNN, "RNN_RELU": FrozenRNN, "LSTM": FrozenLSTM, "GRU": FrozenGRU}


def _numpy_module(module):
    """fastrnn's NumPy module with ``module``'s configuration and weights."""
    import fastrnn
    params = dict(module.named_parameters())
    dtypes = {p.dtype for p in params.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _NUMPY_DTYPES:
        raise TypeError(f"model: fastrnn.torch.freeze takes recurrent layers of float32 or "
                        f"float64, got a {type(module).__name__} of "
                        f"{', '.join(sorted(map(str, dtypes)))}")
    dtype = _NUMPY_DTYPES[next(iter(dtypes))]
    options = dict(num_layers=module.num_layers, bias=module.bias,
                   batch_first=module.batch_first, dropout=module.dropout,
                   bidirectional=module.bidirectional, dtype=dtype, seed=0)
    if module.mode == "LSTM":
        cls = fastrnn.LSTM
        options["proj_size"] = module.proj_size
    elif module.mode == "GRU":
        cls = fastrnn.GRU
    else:
        cls = fastrnn.RNN
        options["nonlinearity"] = "relu" if module.mode == "RNN_RELU" else "tanh"
    with warnings.catch_warnings():             # dropout with one layer: torch warned already
        warnings.simplefilter("ignore", UserWarning)
        numpy_module = cls(module.input_size, module.hidden_size, **options)
    numpy_module.load_state_dict({name: p.detach().cpu().numpy()
                                  for name, p in params.items()})
    return numpy_module


def freeze(model, dtype=None):
    """A copy of a torch model with its recurrent layers frozen by ``fastrnn.freeze``.

    Every module whose type is exactly ``torch.nn.RNN``, ``LSTM`` or ``GRU``
    (or ``fastrnn.torch``'s), the model itself included, becomes a
    ``FrozenRNN`` / ``FrozenLSTM`` / ``FrozenGRU``: an inference-only module
    computing through ``fastrnn.freeze`` of the NumPy module with the same
    configuration and weights, at ``dtype``.  The model's other modules are
    deep copies, untouched; ``model`` itself is not changed.  Subclasses of
    the recurrent classes (which may override ``forward``) stay as they are.

    Parameters
    ----------
    model : torch.nn.Module
        Its recurrent layers float32 or float64, on the CPU or not (their
        weights are copied to the CPU; the frozen layers take CPU tensors).
    dtype : {None, "bfloat16", "int8"}
        ``fastrnn.freeze``'s: None keeps each layer's own precision;
        "bfloat16" and "int8" need float32 layers.

    Returns
    -------
    torch.nn.Module
        The copy (a frozen layer, where ``model`` is a recurrent layer).

    Raises
    ------
    TypeError
        ``model`` is not a ``torch.nn.Module``; a recurrent layer's weights are
        neither float32 nor float64.
    ValueError
        ``dtype`` is not one ``fastrnn.freeze`` takes (it names the argument).

    Notes
    -----
    A frozen layer computes no gradients: called with grad mode on and an
    input or ``hx`` that requires grad, it raises ``RuntimeError`` (call it
    under ``torch.no_grad()``, or detach).  It has no parameters, so the
    copy's ``state_dict()`` holds no weights of the frozen layers; it pickles
    (``torch.save`` of the whole model) with them.  Threads:
    ``fastrnn.set_num_threads``.

    Examples
    --------
    >>> import torch, fastrnn.torch
    >>> model = torch.nn.Sequential(torch.nn.LSTM(4, 8))
    >>> frozen = fastrnn.torch.freeze(model)
    >>> type(frozen[0]).__name__
    'FrozenLSTM'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    import fastrnn
    if not hasattr(fastrnn, "freeze"):
        raise RuntimeError(f"fastrnn.torch.freeze computes through fastrnn.freeze, which "
                           f"fastrnn {fastrnn.__version__} does not have")
    from fastrnn import torch as bridge
    targets = (nn.RNN, nn.LSTM, nn.GRU, bridge.RNN, bridge.LSTM, bridge.GRU)
    copied = copy.deepcopy(model)
    done = {}                          # id of a layer -> its frozen twin (shared layers stay shared)

    def frozen(module):
        key = id(module)
        if key not in done:
            done[key] = _FROZEN[module.mode](module, dtype)
        return done[key]

    if type(copied) in targets:
        return frozen(copied)
    for parent in list(copied.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None and type(child) in targets:
                parent._modules[name] = frozen(child)
    return copied
