"""rlvr's environments and verifiers as the reward of other trainers.

* :mod:`rlvr.integrations.trl`: a reward function for TRL's ``GRPOTrainer`` and the
  matching ``datasets.Dataset``.
* :mod:`rlvr.integrations.verl`: ``compute_score`` for verl's custom reward hook and
  an exporter of an environment's problems to verl's parquet layout.

Neither trainer is imported here, and neither is needed to import these modules;
``datasets`` and ``pyarrow`` load only when a dataset is built.
"""
