"""VGG19: the network, its layout, class names, preprocessing conventions and weight files."""
