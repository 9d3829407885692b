"""Decoding strategies (autoregressive, speculative, Saguaro/SSD) and the exact verification rule they share."""
