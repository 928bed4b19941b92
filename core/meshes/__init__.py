"""Mesh input: read (OBJ, PLY, STL, OFF; bounded), validate, canonical order, normalise."""
