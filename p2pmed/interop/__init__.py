"""Exchange with other health systems' formats (FHIR, GS1 EPCIS), mapped to and from the ledger's own types.

May import the ledger and the foundation.
"""
