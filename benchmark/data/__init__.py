"""Data: the on-disk layout of the cDDPM authors, one loader for every cohort, synthetic default, preparation."""
