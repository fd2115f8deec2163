"""medinv: how much a medical deep-learning model leaks about its patients."""
