"""The RIS boundary: each screened exam's result as an HL7 v2 ORU^R01 over MLLP
(`hl7v2`) and a FHIR R4 DiagnosticReport (`fhir`), built from one `report.ExamReport`.

An ExamReport carries PHI (the RIS files a result against its patient and order): it lives
in memory for one delivery and is never logged, written to the lake, XCom or MLflow.
"""
