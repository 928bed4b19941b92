"""The conversion as callers run it: size mode, then every result checked against its source; many shapes at once; in a child process."""
