"""The data category of an Observation without one, from its LOINC code.

FHIR makes ``Observation.category`` optional, and many real results (lab systems', devices')
leave it out, while the ledger files every record under one category. For common codes
the category follows from the code itself: ``VITAL_SIGNS`` are the codes of FHIR R5's
vital-signs value set (``observation-vitalsignresult``; plus pulse oximetry 59408-5, as US
Core uses it), and ``LABORATORY`` common codes of LOINC's laboratory class type
(chemistry, hematology, coagulation). A code in neither derives nothing: the importer then
asks for the category by name rather than guess.
"""

from __future__ import annotations

__all__ = ["LABORATORY", "LOINC_SYSTEM", "VITAL_SIGNS", "category_of_code"]

LOINC_SYSTEM = "http://loinc.org"

VITAL_SIGNS = frozenset(
    {
        "85353-1",  # vital signs panel
        "9279-1",  # respiratory rate
        "8867-4",  # heart rate
        "2708-6",  # oxygen saturation in arterial blood
        "59408-5",  # oxygen saturation by pulse oximetry
        "8310-5",  # body temperature
        "8302-2",  # body height
        "9843-4",  # head occipital-frontal circumference
        "29463-7",  # body weight
        "39156-5",  # body mass index
        "85354-9",  # blood pressure panel
        "8480-6",  # systolic blood pressure
        "8462-4",  # diastolic blood pressure
        "8478-0",  # mean blood pressure
    }
)
LABORATORY = frozenset(
    {
        "2339-0",  # glucose, mass/volume, blood
        "15074-8",  # glucose, moles/volume, blood
        "2345-7",  # glucose, mass/volume, serum or plasma
        "14749-6",  # glucose, moles/volume, serum or plasma
        "4548-4",  # hemoglobin A1c
        "2160-0",  # creatinine, serum or plasma
        "2951-2",  # sodium, serum or plasma
        "2823-3",  # potassium, serum or plasma
        "1742-6",  # alanine aminotransferase
        "2093-3",  # cholesterol
        "2085-9",  # HDL cholesterol
        "13457-7",  # LDL cholesterol, calculated
        "2571-8",  # triglyceride
        "1988-5",  # C reactive protein
        "718-7",  # hemoglobin, blood
        "6690-2",  # leukocytes, blood
        "777-3",  # platelets, blood
        "6301-6",  # INR
    }
)


def category_of_code(code: str) -> str | None:
    """The ledger's data category of a LOINC ``code``, if this table knows it."""
    if code in VITAL_SIGNS:
        return "vital-signs"
    if code in LABORATORY:
        return "laboratory"
    return None
