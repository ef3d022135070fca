"""What deep ConvNets learn (receptive fields, top patches, activation maximisation),
convolutions in 1D and 3D, and the week's quiz as self-checks."""
