"""Back to geometry: marching cubes and remeshing, sphere tracing and its GLSL, CSG, volume grids, metrics and equal-byte baselines."""
