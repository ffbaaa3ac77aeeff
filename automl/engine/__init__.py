"""The one experiment loop and what it uses per trial: usage and cost, log caps, the tuner thread."""
