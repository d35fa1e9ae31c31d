"""The math layer: every formula of the algorithms as a pure function of tensors.

torch and the standard library only (no ray, gymnasium, transformers, vllm, no config objects);
``tests/test_packaging.py`` checks every module of this folder. The formulas, defaults and
implementation details are written out in ``docs/algorithms.md``; the papers are in
``docs/references.md``.

* ``names``: option values, batch columns, metric and result keys (one vocabulary for all layers).
* ``defaults``: every option of the GRPO family with its default, symbol, meaning and source.
* ``contract``: ``GroupTensors``, the learner's typed input (MuJoCo policies and causal LMs alike).
* ``advantages``, ``preferences``, ``losses``, ``kl``, ``hard_pair``, ``distributions``,
  ``diagnostics``: the formulas. ``theory``: the stationary-policy closed forms and the tabular check.
"""
