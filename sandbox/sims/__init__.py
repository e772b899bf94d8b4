"""The simulated services: Partner Center, Entra ID, Key Vault, Dataverse and Salesforce.

A simulator stands for the real service, so it never imports the app (``shared``), and the app never
imports a simulator: where both hold the same list (the patchable referral paths, the help codes, field
names and sizes), each takes its copy from the service's published definition. Shared code would let a
mistake in the app become the simulator's rule too, and the tests could no longer catch it.
tests/unit/test_sims_stand_alone.py holds both directions.
"""
