"""Course companion for ConvNets' special applications: neural style transfer
(`nbutils.style`) and face verification and recognition (`nbutils.faces`)."""
