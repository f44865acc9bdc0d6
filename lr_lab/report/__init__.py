"""What a run shows: the table and the answer, the PNGs, TensorBoard, the progress lines."""
