"""Behaviour-policy learners that generate our D4RL-style datasets."""
