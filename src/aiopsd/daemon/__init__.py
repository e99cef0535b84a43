"""Process wiring: the only package that touches sockets, clocks, threads and signals."""
