"""Beyond the course, each built on the core: the fast style path (`fast_style`: L-BFGS,
colour, coarse-to-fine), feed-forward style transfer and its ONNX reader (`feedforward`),
the face database's ANN and Milvus search (`gallery`), the two command lines (`cli`), the
notebooks' optional widgets (`widgets`) and the siamese notebook's generated dataset of
character glyphs (`glyphs`)."""
