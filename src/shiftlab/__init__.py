"""shiftlab: measured answers to whether and why convolutional networks are translation invariant."""
__version__ = "0.4.2"
