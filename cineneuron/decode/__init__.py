"""From fMRI predictions to memories to video: MoM retrieval, fusion, and the decoders."""
