"""Preference learning: pairs, Bradley-Terry reward models, DPO / SimPO, rejection sampling.

``import rlvr.preference`` imports nothing else; import the module you need
(``rlvr.preference.losses``, ``rlvr.preference.dpo``, ...).
"""
