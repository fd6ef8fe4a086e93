"""The ground every app stands on: domain errors and their HTTP mapping, API plumbing, request
context and middleware. It has no models and imports no app of this project."""
