"""Training samples: winding-number sign, BVH distance, importance sampling; open input detected and converted as a thin shell."""
