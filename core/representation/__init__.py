"""The trained shape: the network's layout, numpy evaluation, quantisation, the .h5 file format, the paper's released weights, placement."""
