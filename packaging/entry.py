"""The frozen `km` executable's entry point: the same `main` as the console script."""

from km.__main__ import main

main()
