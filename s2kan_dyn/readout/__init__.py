"""Read-out of a fitted S2KAN: terms, snapping of constants, equations."""
