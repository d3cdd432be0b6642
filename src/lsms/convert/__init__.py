"""Converters of foreign checkpoints into lsms weights."""
