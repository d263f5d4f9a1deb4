"""`km replay`: a captured session's client messages sent again to a fresh server run, and its
answers compared with the captured ones."""
