"""The dashboard's screens: the overview, one experiment, one trial."""
