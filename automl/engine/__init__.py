"""The one experiment loop and what it uses per trial: metrics reading, usage and cost, log caps, the tuner thread."""
