"""Bounded work outside the trainer's process: killable workers, the code sandbox.

No torch here. ``import rlvr.execution`` imports nothing else; import the module
you need (``rlvr.execution.workers``, ``rlvr.execution.sandbox``).
"""
