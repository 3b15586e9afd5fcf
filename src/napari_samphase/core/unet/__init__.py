"""A U-Net for supervised phase maps: the network, and overlap-tile inference."""
