"""Reading registries: the OCI content model, the registry client, its HTTP transport, and listing what a
registry holds."""
