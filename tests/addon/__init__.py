"""Tests inside Blender (a package, so its test file names may repeat those in tests/)."""
