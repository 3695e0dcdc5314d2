"""Verification tools for the embedded authorization engine (not used at run time).

* :mod:`authz.testing.conformance`: runs OpenFGA's conformance matrix
  (``consolidated_1_1_tests.yaml``) against the embedded engine (``pmbot fga conformance``);
* :mod:`authz.testing.differential`: compares the embedded engine with the real OpenFGA
  engine on random models (``python -m authz.testing.differential --seed N [--model K]``),
  over :mod:`~authz.testing.model_spec` (the models it generates),
  :mod:`~authz.testing.cases`, :mod:`~authz.testing.generator`,
  :mod:`~authz.testing.engines` (both engines, driven alike), :mod:`~authz.testing.shrink`
  and :mod:`~authz.testing.report`.
"""
