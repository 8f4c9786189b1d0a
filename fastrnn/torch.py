"""PyTorch backend: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` computed by fastrnn's kernels.

``fastrnn.torch.LSTM`` (and ``GRU``, ``RNN``) is a subclass of the ``torch.nn``
class with the same constructor, parameters, ``state_dict`` and ``forward``;
its forward and backward run the whole stack of layers through fastrnn's C
kernels (``fastrnn.functional.stack_forward`` / ``stack_backward``) inside one
``torch.autograd.Function``, reading CPU tensors as NumPy arrays without a
copy.  ``convert(model)`` switches the plain ``torch.nn`` recurrent modules of
a model over in place.  ``freeze(model, dtype)`` returns a copy of a model with
its recurrent layers frozen by ``fastrnn.freeze`` (``fastrnn._torch_freeze``):
inference only, in float32, bfloat16 or int8.

What the kernels do not cover goes to PyTorch's own implementation: tensors
not on the CPU, dtypes other than float32 and float64, autocast, tracing by
``torch.compile``, forward-mode AD and functorch transforms, tensor
subclasses, and inputs of mixed dtypes or devices (PyTorch then raises what it
raises).  Sizes past what the kernels can index (``fastrnn._checks``) are a
``ValueError`` before anything the size of the input is made.  Importing
this module imports PyTorch; ``import fastrnn`` does not.
"""

import functools

import numpy as np
import torch                      # absolute import: PyTorch, not this module
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from fastrnn import functional
from fastrnn._cell import Cell
from fastrnn._checks import check_call_sizes, check_layer_sizes
from fastrnn.threads import get_num_threads

__all__ = ["RNN", "LSTM", "GRU", "convert", "freeze", "FrozenRNN", "FrozenLSTM",
           "FrozenGRU"]

_FLOAT_DTYPES = (torch.float32, torch.float64)
_MODES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}
_PLAIN_TENSOR_TYPES = (torch.Tensor, nn.Parameter)


# ---------------------------------------------------------------------------
# Tensors <-> arrays

def _as_array(tensor):
    """A CPU tensor's memory as an ndarray (no copy when already contiguous)."""
    tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    if tensor.is_neg():
        tensor = tensor.resolve_neg()
    return tensor.numpy()


def _is_plain_cpu_tensor(tensor, dtype):
    """True for an ordinary strided CPU tensor of ``dtype`` that NumPy can read."""
    if type(tensor) not in _PLAIN_TENSOR_TYPES:
        return False
    if tensor.device.type != "cpu" or tensor.layout != torch.strided or tensor.dtype != dtype:
        return False
    is_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return not (is_wrapped is not None and is_wrapped(tensor))


@functools.lru_cache(maxsize=None)
def _cells(mode, num_layers, num_directions):
    """fastrnn's cell description of a torch ``mode`` ('LSTM', 'GRU', 'RNN_TANH', ...)."""
    if mode == "LSTM":
        cell = Cell.make("lstm")
    elif mode == "GRU":
        cell = Cell.make("gru")
    else:
        cell = Cell.make("rnn", nonlinearity="relu" if mode == "RNN_RELU" else "tanh")
    return [[cell] * num_directions for _ in range(num_layers)]


class _Stack:
    """Everything about one call that is not a tensor autograd tracks."""

    __slots__ = ("cells", "names", "lengths", "dropout_masks", "n_threads", "lstm")

    def __init__(self, cells, names, lengths, dropout_masks, n_threads, lstm):
        self.cells = cells
        self.names = names
        self.lengths = lengths
        self.dropout_masks = dropout_masks
        self.n_threads = n_threads
        self.lstm = lstm

    def forward(self, x, h0, c0, weights, training):
        params = {name: _as_array(w) for name, w in zip(self.names, weights)}
        return functional.stack_forward(
            self.cells, params, _as_array(x), _as_array(h0),
            None if c0 is None else _as_array(c0), lengths=self.lengths,
            dropout_masks=self.dropout_masks, training=training, n_threads=self.n_threads)


class _StackFunction(torch.autograd.Function):
    """The whole stack of layers as one autograd node.

    Inputs: ``stack`` (a ``_Stack``), time-major contiguous ``x`` (T, N, I),
    ``h0`` (L*D, N, H_out), ``c0`` (L*D, N, H) or None, then the flat weights
    in ``stack.names`` order.  Outputs: ``y`` (T, N, D*H_out), ``h_n`` and, for
    the LSTM, ``c_n``.
    """

    @staticmethod
    def forward(ctx, stack, x, h0, c0, *weights):
        y, h_n, c_n, saved = stack.forward(x, h0, c0, weights, training=True)
        # Everything is saved as tensors (the kernels' arrays without a copy): autograd
        # then notices an in-place change before backward and frees it all after
        # backward, as it does for torch.nn's own saved tensors.
        kernel_tensors = []
        ctx.stack = stack
        ctx.kernel_saved = _arrays_to_slots(saved, kernel_tensors)
        ctx.n_inputs = 3 + len(weights)
        ctx.save_for_backward(x, h0, c0, *weights, *kernel_tensors)
        ctx.set_materialize_grads(False)
        outputs = (torch.from_numpy(y), torch.from_numpy(h_n))
        if stack.lstm:
            outputs += (torch.from_numpy(c_n),)
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_n, dc_n=None):
        stack = ctx.stack
        tensors = ctx.saved_tensors
        x, h0, c0, *weights = tensors[:ctx.n_inputs]
        saved = _slots_to_arrays(ctx.kernel_saved, tensors[ctx.n_inputs:])
        params = {name: _as_array(w) for name, w in zip(stack.names, weights)}

        def array_or_none(grad):
            return None if grad is None else _as_array(grad)

        dx, dh0, dc0, grads = functional.stack_backward(
            stack.cells, params, _as_array(x), _as_array(h0),
            None if c0 is None else _as_array(c0), saved, array_or_none(dy),
            array_or_none(dh_n), array_or_none(dc_n), lengths=stack.lengths,
            dropout_masks=stack.dropout_masks, n_threads=stack.n_threads)
        needs = ctx.needs_input_grad

        def tensor_if(i, array):
            return torch.from_numpy(array) if needs[i] and array is not None else None

        weight_grads = [tensor_if(4 + i, grads.get(name)) for i, name in enumerate(stack.names)]
        return (None, tensor_if(1, dx), tensor_if(2, dh0), tensor_if(3, dc0), *weight_grads)


class _Slot:
    """Where an array of the kernels' cache went in the list of saved tensors."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


def _walk(obj, leaf):
    """``obj`` (dicts, lists, tuples, namedtuples) with ``leaf`` applied to every other value."""
    if isinstance(obj, dict):
        return {key: _walk(value, leaf) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        values = [_walk(value, leaf) for value in obj]
        return type(obj)(*values) if hasattr(obj, "_fields") else type(obj)(values)
    return leaf(obj)


def _arrays_to_slots(obj, tensors):
    """``obj`` with each ndarray moved to ``tensors`` (as a tensor sharing its memory)."""
    def slot(value):
        if not isinstance(value, np.ndarray):
            return value
        try:
            tensors.append(torch.from_numpy(value))
        except (TypeError, ValueError):          # a dtype or layout torch cannot share
            return value
        return _Slot(len(tensors) - 1)
    return _walk(obj, slot)


def _slots_to_arrays(obj, tensors):
    """The inverse of ``_arrays_to_slots``: the same arrays (their memory, no copy)."""
    return _walk(obj, lambda value: tensors[value.index].numpy()
                 if isinstance(value, _Slot) else value)


# ---------------------------------------------------------------------------
# The modules

class _FastRNNMixin:
    """forward through fastrnn's kernels; anything they do not cover goes to torch.nn."""

    def forward(self, input, hx=None):  # noqa: A002 - torch.nn's argument name
        self._update_flat_weights()
        if not self._fastrnn_supported(input, hx):
            return super().forward(input, hx)
        prepared = self._fastrnn_prepare(input, hx)
        if prepared is None:                    # a case left to torch.nn (it raises)
            return super().forward(input, hx)
        return self._fastrnn_run(*prepared)

    # -- which calls the kernels take ----------------------------------------

    def _fastrnn_supported(self, input, hx):
        data = input.data if isinstance(input, PackedSequence) else input
        if not isinstance(data, torch.Tensor) or data.dtype not in _FLOAT_DTYPES:
            return False
        if (torch.jit.is_scripting() or torch.compiler.is_compiling()
                or torch._C._is_any_autocast_enabled()
                or getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0):
            return False
        dtype = data.dtype
        if not _is_plain_cpu_tensor(data, dtype):
            return False
        if not all(isinstance(w, torch.Tensor) and _is_plain_cpu_tensor(w, dtype)
                   for w in self._flat_weights):
            return False
        if hx is None:
            return True
        states = hx if self.mode == "LSTM" else (hx,)
        if not isinstance(states, (tuple, list)) or (self.mode == "LSTM" and len(states) != 2):
            return False
        return all(isinstance(s, torch.Tensor) and _is_plain_cpu_tensor(s, dtype)
                   for s in states)

    # -- torch.nn's argument handling, mirrored ------------------------------

    def _fastrnn_prepare(self, input, hx):
        """torch.nn's preprocessing and checks (torch/nn/modules/rnn.py), step for step.

        Returns ``(x, states, batch_sizes, sorted_indices, unsorted_indices,
        is_batched, batch_dim)`` with ``x`` the batched input (or the packed
        data) and ``states`` a tuple ``(h0,)`` or ``(h0, c0)`` of full
        (L*D, N, *) tensors; or None for a call that torch.nn should make.
        """
        lstm = self.mode == "LSTM"
        num_directions = 2 if self.bidirectional else 1
        real_hidden_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        rows = self.num_layers * num_directions
        is_batched, batch_dim = True, 0 if self.batch_first else 1

        def zeros(batch, size, like):
            return torch.zeros(rows, batch, size, dtype=like.dtype, device=like.device)

        def zero_states(batch, like):
            h = zeros(batch, real_hidden_size, like)
            return (h, zeros(batch, self.hidden_size, like)) if lstm else (h,)

        if isinstance(input, PackedSequence):
            input, batch_sizes, sorted_indices, unsorted_indices = input
            max_batch_size = int(batch_sizes[0])
            if hx is None:
                states = zero_states(max_batch_size, input)
            else:
                hx = self.permute_hidden(hx, sorted_indices)
                states = tuple(hx) if lstm else (hx,)
            if lstm:
                # torch.nn leaves this check to its kernel, which raises its own error.
                try:
                    self.check_forward_args(input, states, batch_sizes)
                except RuntimeError:
                    return None
            else:
                self.check_forward_args(input, states[0], batch_sizes)
        else:
            batch_sizes = sorted_indices = unsorted_indices = None
            if input.dim() not in (2, 3):
                tail = " tensor instead" if self.mode.startswith("RNN") else " instead"
                name = "RNN" if self.mode.startswith("RNN") else self.mode
                raise ValueError(
                    f"{name}: Expected input to be 2D or 3D, got {input.dim()}D{tail}")
            is_batched = input.dim() == 3
            if not is_batched:
                input = input.unsqueeze(batch_dim)
            max_batch_size = input.size(0) if self.batch_first else input.size(1)
            if lstm:
                if hx is None:
                    states = zero_states(max_batch_size, input)
                else:
                    if is_batched:
                        if hx[0].dim() != 3 or hx[1].dim() != 3:
                            raise RuntimeError(
                                "For batched 3-D input, hx and cx should also be 3-D but got "
                                f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
                    else:
                        if hx[0].dim() != 2 or hx[1].dim() != 2:
                            raise RuntimeError(
                                "For unbatched 2-D input, hx and cx should also be 2-D but "
                                f"got ({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
                        hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
                    states = tuple(hx)
                self.check_forward_args(input, states, batch_sizes)
            else:
                if hx is not None:
                    if not is_batched:
                        if hx.dim() != 2:
                            raise RuntimeError(
                                "For unbatched 2-D input, hx should also be 2-D but got "
                                f"{hx.dim()}-D tensor")
                        hx = hx.unsqueeze(1)
                    elif hx.dim() != 3:
                        raise RuntimeError(
                            "For batched 3-D input, hx should also be 3-D but got "
                            f"{hx.dim()}-D tensor")
                states = zero_states(max_batch_size, input) if hx is None else (hx,)
                self.check_forward_args(input, states[0], batch_sizes)
            if input.size(1 if self.batch_first else 0) == 0:
                return None       # T = 0: torch.nn raises its own error
        return input, states, batch_sizes, sorted_indices, unsorted_indices, is_batched, \
            batch_dim

    # -- running the stack ---------------------------------------------------

    def _fastrnn_run(self, input, states, batch_sizes, sorted_indices, unsorted_indices,
                     is_batched, batch_dim):
        lstm = self.mode == "LSTM"
        num_directions = 2 if self.bidirectional else 1
        lengths = None
        packed = batch_sizes is not None
        weights = list(self._flat_weights)
        needs_grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in (input, *states, *weights))
        if packed:
            sizes = batch_sizes.numpy()
            T, N = len(sizes), int(sizes[0])
            full = bool((sizes == N).all())
        else:
            T, N = input.shape[1 if self.batch_first else 0], input.shape[0 if self.batch_first
                                                                           else 1]
            full = True
        # before anything the size of the input is made
        check_layer_sizes(_MODES[self.mode], self.input_size, self.hidden_size, self.proj_size,
                          self.num_layers, num_directions)
        check_call_sizes(_MODES[self.mode], T, N, self.input_size, self.hidden_size,
                         self.proj_size, self.num_layers, num_directions,
                         training=needs_grad, lengths=not full)
        if packed:
            if full:                          # every sequence full: packed data is (T*N, I)
                x = input.reshape(T, N, input.size(-1))
                pack_index = None
            else:
                valid = np.arange(N)[None, :] < sizes[:, None]           # (T, N)
                lengths = valid.sum(axis=0).astype(np.int64)
                pack_index = torch.from_numpy(np.flatnonzero(valid))
                x = input.new_zeros(T * N, input.size(-1)).index_copy(0, pack_index, input)
                x = x.view(T, N, -1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        x = x.contiguous()
        states = tuple(s.contiguous() for s in states)
        h_out = states[0].size(-1)
        dropout_masks = None
        if self.training and self.dropout > 0 and self.num_layers > 1:
            dropout_masks = [_dropout_mask((T, N, num_directions * h_out), self.dropout,
                                           x.dtype) for _ in range(self.num_layers - 1)]
        stack = _Stack(_cells(self.mode, self.num_layers, num_directions),
                       list(self._flat_weights_names), lengths, dropout_masks,
                       get_num_threads(), lstm)
        c0 = states[1] if lstm else None
        if needs_grad:
            outputs = _StackFunction.apply(stack, x, states[0], c0, *weights)
            y, hidden = outputs[0], outputs[1:]
        else:
            y, h_n, c_n, _ = stack.forward(x, states[0], c0, weights, training=False)
            y = torch.from_numpy(y)
            hidden = (torch.from_numpy(h_n),) + ((torch.from_numpy(c_n),) if lstm else ())
        hidden = hidden if lstm else hidden[0]

        if packed:
            y = y.reshape(T * N, -1)
            if pack_index is not None:
                y = y.index_select(0, pack_index)
            output = PackedSequence(y, batch_sizes, sorted_indices, unsorted_indices)
            return output, self.permute_hidden(hidden, unsorted_indices)
        if self.batch_first:
            y = y.transpose(0, 1).contiguous()
        if not is_batched:
            y = y.squeeze(batch_dim)
            hidden = tuple(h.squeeze(1) for h in hidden) if lstm else hidden.squeeze(1)
        return y, hidden


def _dropout_mask(shape, p, dtype):
    """Inverted dropout as an array: 0 with probability ``p``, else ``1/(1-p)``.

    Drawn from torch's default generator, so ``torch.manual_seed`` reproduces it.
    """
    if p >= 1:
        return torch.zeros(shape, dtype=dtype).numpy()
    mask = torch.empty(shape, dtype=dtype).bernoulli_(1 - p).div_(1 - p)
    return mask.numpy()


_CLASS_DOC = """{summary}

    A drop-in replacement for ``torch.nn.{name}`` (a subclass of it): the same
    constructor, parameters, ``state_dict`` and ``forward``, computed forward
    and backward by fastrnn's C kernels for float32 and float64 CPU tensors.

    Parameters
    ----------
    {params}
    device, dtype
        As ``torch.nn.{name}``.

    Notes
    -----
    ``forward(input, hx=None)`` takes what ``torch.nn.{name}.forward`` takes
    and returns {returns}: ``input`` of shape ``(T, N, input_size)``
    (``(N, T, input_size)`` with ``batch_first``), ``(T, input_size)``
    unbatched, or a ``PackedSequence`` (then ``output`` is packed the same
    way); {hx_doc}
    (no ``N`` axis unbatched), zeros when omitted; ``output`` has shape
    ``(T, N, D*H_out)``.

    The backward pass (when grad mode is on and an input, state or parameter
    requires grad) runs the kernels too; the graph can be differentiated once
    (double backward raises ``RuntimeError``).  Dropout between layers, in
    training mode, draws its masks from torch's default generator, so
    ``torch.manual_seed`` reproduces a run (the masks differ from torch.nn's
    own).  Threads: ``fastrnn.set_num_threads`` / ``fastrnn.threads``, not
    ``torch.set_num_threads``.  Other devices and dtypes, autocast and
    ``torch.compile`` tracing go to ``torch.nn.{name}.forward``.

    Examples
    --------
    >>> import torch, fastrnn.torch
    >>> rnn = fastrnn.torch.{name}({example_args})
    >>> output, _ = rnn(torch.randn(5, 3, 10))
    >>> output.shape
    torch.Size([5, 3, 20])
"""

_COMMON_PARAMS = """input_size : int
        Features of each input step.
    hidden_size : int
        Features of the hidden state, H.
    num_layers : int, default 1
        Layers stacked, L.{extra}
    bias : bool, default True
        Whether the layers have ``bias_ih`` and ``bias_hh``.
    batch_first : bool, default False
        ``input`` and ``output`` are ``(N, T, *)``.
    dropout : float, default 0.0
        Dropout on each layer's output but the last, in training mode.
    bidirectional : bool, default False
        Two directions, D = 2."""


class RNN(_FastRNNMixin, nn.RNN):
    __doc__ = _CLASS_DOC.format(
        summary="Elman RNN (tanh or relu) on fastrnn's kernels, as ``torch.nn.RNN``.",
        name="RNN", returns="``(output, h_n)``",
        hx_doc="``hx`` of shape ``(D*num_layers, N, H)``", example_args="10, 20, num_layers=2",
        params=_COMMON_PARAMS.format(extra="\n    nonlinearity : {'tanh', 'relu'}, default "
                                     "'tanh'\n        The activation."))


class LSTM(_FastRNNMixin, nn.LSTM):
    __doc__ = _CLASS_DOC.format(
        summary="LSTM on fastrnn's kernels, as ``torch.nn.LSTM``.",
        name="LSTM", returns="``(output, (h_n, c_n))``",
        hx_doc="``hx`` a tuple ``(h_0, c_0)`` of shapes\n    ``(D*num_layers, N, H_out)`` and "
               "``(D*num_layers, N, H)``",
        example_args="10, 20, num_layers=2",
        params=_COMMON_PARAMS.format(extra="") + """
    proj_size : int, default 0
        Project each output to this many features (H_out); 0: none.""")


class GRU(_FastRNNMixin, nn.GRU):
    __doc__ = _CLASS_DOC.format(
        summary="GRU on fastrnn's kernels, as ``torch.nn.GRU``.",
        name="GRU", returns="``(output, h_n)``",
        hx_doc="``hx`` of shape ``(D*num_layers, N, H)``", example_args="10, 20, num_layers=2",
        params=_COMMON_PARAMS.format(extra=""))


_CONVERSIONS = {nn.RNN: RNN, nn.LSTM: LSTM, nn.GRU: GRU}


def convert(model):
    """Switch a model's ``torch.nn`` recurrent layers to fastrnn's, in place.

    Every submodule whose type is exactly ``torch.nn.RNN``, ``torch.nn.LSTM``
    or ``torch.nn.GRU`` (``model`` itself included) becomes
    ``fastrnn.torch.RNN``, ``LSTM`` or ``GRU`` by a change of class: the very
    same ``Parameter`` objects, hooks and settings stay, nothing is copied.
    Subclasses of those classes (which may override ``forward``) are left
    alone.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Examples
    --------
    >>> import torch, fastrnn.torch
    >>> model = torch.nn.Sequential(torch.nn.LSTM(4, 8), torch.nn.Linear(8, 1))
    >>> type(fastrnn.torch.convert(model)[0])
    <class 'fastrnn.torch.LSTM'>
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    for module in model.modules():
        target = _CONVERSIONS.get(type(module))
        if target is not None:
            module.__class__ = target
    return model


# ---------------------------------------------------------------------------
# Frozen inference: a copy of a model with its recurrent layers frozen

from fastrnn._torch_freeze import FrozenGRU, FrozenLSTM, FrozenRNN, freeze  # noqa: E402
