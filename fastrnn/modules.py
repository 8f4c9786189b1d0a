"""fastrnn's modules under one name: the layers (``fastrnn.layers``) and the cells
(``fastrnn.cells``), as ``fastrnn.modules.LSTM`` and so on.

Where things live: ``fastrnn._checks`` checks every argument,
``fastrnn._parameters`` holds the parameters (state_dict, load_state_dict,
pickling), ``fastrnn.layers`` and ``fastrnn.cells`` are the modules, and
``fastrnn.functional`` runs the stack of layers through the C kernels.
"""

from fastrnn.cells import GRUCell, LSTMCell, RNNCell
from fastrnn.layers import GRU, LSTM, RNN, TrainCache

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "TrainCache"]
