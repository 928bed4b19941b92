"""Shared by every stage: errors, constants, progress and cancellation, the conversion settings, units, strict JSON, output paths, bounded reads, parent death."""
