"""The one-command demo: the example campaign run end to end with simulated units."""
