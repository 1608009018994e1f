"""The PACS boundary: the Orthanc client and the pseudonym table."""
