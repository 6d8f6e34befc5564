"""Reading registries: the OCI content model, the registry client and its HTTP transport."""
