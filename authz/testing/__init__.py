"""Verification tools for the embedded authorization engine (not used at run time).

* :mod:`authz.testing.conformance`: runs OpenFGA's conformance matrix
  (``consolidated_1_1_tests.yaml``) against the embedded engine (``pmbot fga conformance``).
"""
