"""Anonymisation of tables before training: drop, pseudonymise, generalise, k-anonymity, redaction.

``anonymize(config, "people.csv")`` stores the anonymised table as a dataset (``NAME:VERSION``,
``modelyard.store.datasets``) with a report and lineage; docs/privacy.md has the steps.
"""

from __future__ import annotations

from modelyard._lazy import lazy_attributes

__all__ = ["anonymize", "anonymize_frame", "load_config", "AnonymizeResult", "AnonymizeSpec"]

__getattr__, __dir__ = lazy_attributes(
    globals(),
    {
        "anonymize": "modelyard.privacy.pipeline",
        "anonymize_frame": "modelyard.privacy.pipeline",
        "AnonymizeResult": "modelyard.privacy.pipeline",
        "load_config": "modelyard.privacy.config",
        "AnonymizeSpec": "modelyard.privacy.config",
    },
)
