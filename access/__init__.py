"""Operators, their tokens and roles: who may do what (the permission table), checked in one place."""
