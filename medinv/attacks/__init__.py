"""Attacks on trained medical models: attribute inference and model inversion."""
