"""The AI gateway and the hospital PACS and RIS: pull a night, deliver results, retention."""
